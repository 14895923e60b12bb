"""The models people may choose and their prices, edited in one table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from chat.models import ChatModel

if TYPE_CHECKING:
    # The stubs' ModelAdmin is generic over its model; Django's own class is not subscriptable.
    ChatModelAdminBase = admin.ModelAdmin[ChatModel]
else:
    ChatModelAdminBase = admin.ModelAdmin


@admin.register(ChatModel)
class ChatModelAdmin(ChatModelAdminBase):
    """Prices apply to replies saved from then on; past costs stay as they were."""

    list_display = (
        "name",
        "label",
        "context_tokens",
        "thinking",
        "input_price_per_million",
        "output_price_per_million",
        "enabled",
        "position",
    )
    list_editable = (
        "label",
        "context_tokens",
        "thinking",
        "input_price_per_million",
        "output_price_per_million",
        "enabled",
        "position",
    )
    list_filter = ("enabled", "thinking")
    search_fields = ("name", "label")
    ordering = ("position", "id")
