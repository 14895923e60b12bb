"""Example prompts: the suggestions a new chat offers, which the admin edits.

A fresh database gets four (migration 0011 writes them once); from then on the rows
are the admin's, so a prompt deleted stays deleted.
"""

from __future__ import annotations

from django.db import models


class ExamplePromptQuerySet(models.QuerySet["ExamplePrompt"]):
    def shown(self) -> ExamplePromptQuerySet:
        """The prompts a new chat offers, in the admin's order."""
        return self.filter(enabled=True).order_by("position", "id")


class ExamplePrompt(models.Model):
    """A suggestion on a new chat: a click puts its prompt in the message box, unsent."""

    title = models.CharField(max_length=60, help_text="The suggestion's heading, a few words.")
    prompt = models.TextField(
        max_length=2000,
        help_text="The text put in the message box; the person edits or sends it.",
    )
    enabled = models.BooleanField(default=True, help_text="Offered on new chats.")
    position = models.PositiveIntegerField(
        default=0, help_text="Order among the suggestions, lowest first. A new chat shows four."
    )

    objects = ExamplePromptQuerySet.as_manager()

    class Meta:
        verbose_name = "example prompt"
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.title
