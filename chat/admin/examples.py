"""The example prompts a new chat offers: titles, texts, order, on or off.

Edited on each prompt's own page: list_editable's inputs have no visible label (axe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from chat.models import ExamplePrompt

if TYPE_CHECKING:
    # The stubs' ModelAdmin is generic over its model; Django's own class is not subscriptable.
    ExamplePromptAdminBase = admin.ModelAdmin[ExamplePrompt]
else:
    ExamplePromptAdminBase = admin.ModelAdmin


@admin.register(ExamplePrompt)
class ExamplePromptAdmin(ExamplePromptAdminBase):
    list_display = ("title", "prompt", "enabled", "position")
    list_filter = ("enabled",)
    search_fields = ("title", "prompt")
    ordering = ("position", "id")
