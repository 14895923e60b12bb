"""Conversations: their settings, their title, and which branch of their message tree shows."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models

from chat.params import ConversationSettings
from chat.text import one_line

if TYPE_CHECKING:
    from chat.models.messages import Message

TITLE_MAX_CHARS = 200
# A title taken from a first message: its opening words, cut at a word.
TITLE_FROM_MESSAGE_CHARS = 60


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def owned_by(self, user: AbstractBaseUser | AnonymousUser) -> ConversationQuerySet:
        return self.filter(owner_id=user.pk)

    def for_sidebar(self) -> ConversationQuerySet:
        return self.only("id", "title", "pinned", "archived", "updated_at").order_by(
            "-pinned", "-updated_at"
        )


class Conversation(models.Model):
    class TitleSource(models.TextChoices):
        MESSAGE = "message", "first message"
        MODEL = "model", "written by the model"
        USER = "user", "set by the owner"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True, help_text="Shown in the sidebar.")
    title_source = models.CharField(
        max_length=16,
        choices=TitleSource.choices,
        default=TitleSource.MESSAGE,
        help_text="A title the owner set is never replaced by a generated one.",
    )
    title_prompt_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens the title request used (counted in usage)."
    )
    title_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    current_leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The newest message of the branch shown; empty means the newest message.",
    )
    model = models.CharField(max_length=100, help_text="Upstream model name used for replies.")
    system_prompt = models.TextField(blank=True)
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="Sent upstream: temperature, top_p, max_tokens, stop, thinking.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last activity.")

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [
            # The sidebar: one user's conversations, newest activity first.
            models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated"),
        ]

    def __str__(self) -> str:
        return self.title or "New chat"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.title = self.clean_title(self.title)
        super().save(*args, **kwargs)

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Conversation:
        conversation = super().from_db(db, field_names, values, **kwargs)
        # Titles saved before the rule held show cleaned too (and are saved so).
        if "title" in conversation.__dict__:
            conversation.title = cls.clean_title(conversation.title)
        return conversation

    # --- Titles ---------------------------------------------------------------

    @staticmethod
    def clean_title(title: str) -> str:
        """A title as every path saves and shows it: one line, no bidi controls (chat.text)."""
        return one_line(title)[:TITLE_MAX_CHARS]

    @classmethod
    def title_from(cls, text: str) -> str:
        """The title a message gives its new conversation: its opening words."""
        line = cls.clean_title(text)
        if len(line) <= TITLE_FROM_MESSAGE_CHARS:
            return line
        return line[: TITLE_FROM_MESSAGE_CHARS - 1].rsplit(" ", 1)[0] + "…"

    # --- Settings -------------------------------------------------------------

    @classmethod
    def new_for(
        cls, owner_id: int, first_message: str, defaults: ConversationSettings
    ) -> Conversation:
        """A conversation its first message names, with the default settings; not saved."""
        conversation = cls(owner_id=owner_id, title=cls.title_from(first_message))
        conversation.apply_settings(defaults)
        return conversation

    def current_settings(self) -> ConversationSettings:
        return ConversationSettings(
            model=self.model, system_prompt=self.system_prompt, params=self.params
        )

    def apply_settings(self, chosen: ConversationSettings) -> None:
        """Set (not save) checked settings."""
        self.model = chosen.model
        self.system_prompt = chosen.system_prompt
        self.params = chosen.params

    # --- The branch shown -----------------------------------------------------

    def shown_branch(self, messages: list[Message]) -> list[Message]:
        """The branch shown among ``messages`` (all of the conversation's, oldest first).

        It ends at ``current_leaf`` and then follows the newest child down, so a
        stale leaf still ends on a message; with no leaf saved (older data) it is
        the newest message's branch.
        """
        if not messages:
            return []
        by_id = {message.id: message for message in messages}
        leaf = by_id.get(self.current_leaf_id) if self.current_leaf_id else None
        if leaf is None:
            return messages[-1].branch_in(messages)
        newest_child: dict[uuid.UUID, Message] = {}
        for message in messages:
            if message.parent_id is not None:
                newest_child[message.parent_id] = message
        while leaf.id in newest_child:
            leaf = newest_child[leaf.id]
        return leaf.branch_in(messages)

    def current_branch(self) -> list[Message]:
        """The messages shown, oldest first (one query)."""
        return self.shown_branch(list(self.messages.order_by("created_at")))

    def show(self, leaf: Message) -> None:
        """Show the branch ending at ``leaf`` from now on (saved)."""
        self.current_leaf = leaf
        self.save(update_fields=["current_leaf", "updated_at"])


class Preset(models.Model):
    """Conversation settings a person saved under a name, to reuse."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets"
    )
    name = models.CharField(max_length=80)
    model = models.CharField(max_length=100, blank=True)
    system_prompt = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="preset_owner_name"),
        ]

    def __str__(self) -> str:
        return self.name
