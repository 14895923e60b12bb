from __future__ import annotations

import uuid
from functools import cache
from itertools import chain
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models import Q

from chat.text import one_line

TITLE_MAX_CHARS = 200


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def owned_by(self, user: object) -> ConversationQuerySet:
        return self.filter(owner=user)

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
        self.title = clean_title(self.title)
        super().save(*args, **kwargs)

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Conversation:
        conversation = super().from_db(db, field_names, values)
        # Titles saved before the rule held show cleaned too (and are saved so).
        if "title" in conversation.__dict__:
            conversation.title = clean_title(conversation.title)
        return conversation


def clean_title(title: str) -> str:
    """A title as every path saves and shows it: one line, no bidi controls (chat.text)."""
    return one_line(title)[:TITLE_MAX_CHARS]


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        ERROR = "error"
        INTERRUPTED = "interrupted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        help_text="The message this one answers or follows; siblings are alternative branches.",
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, help_text="The answer text (markdown).")
    reasoning = models.TextField(blank=True, help_text="The model's thinking, kept apart.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    finish_reason = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    client_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The client's id for a user message: a resent frame makes no second turn.",
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # msg_unique_sender_client_id leads with it
        help_text="Who sent a user message with a client id: one client id is one turn each.",
    )
    model = models.CharField(max_length=100, blank=True, help_text="Model that wrote the reply.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    usage_estimated = models.BooleanField(
        default=False, help_text="Token counts estimated here; the upstream sent no usage."
    )
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(
        max_length=64, blank=True, help_text="Worker process that streams this reply."
    )
    context_left_out = models.PositiveIntegerField(
        default=0,
        help_text="Earlier messages left out of this reply's request to fit the model's context.",
    )
    reserved_tokens = models.PositiveIntegerField(
        default=0,
        help_text="Tokens a reply may use (its prompt and max tokens), held against its owner's "
        "token limits while it streams; its saved usage replaces them (chat.limits).",
    )
    rating = models.SmallIntegerField(
        null=True,
        blank=True,
        choices=[(1, "thumbs up"), (-1, "thumbs down")],
        help_text="The owner's feedback on a reply.",
    )
    feedback_comment = models.TextField(blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last checkpoint while streaming.")

    class Meta:
        ordering = ["created_at"]
        indexes = [
            # Opening a conversation: its messages in order.
            models.Index(fields=["conversation", "created_at"], name="msg_conv_created"),
            # Usage over time: replies by day.
            models.Index(fields=["role", "created_at"], name="msg_role_created"),
            # Worker restarts and the stale sweep: replies still streaming.
            models.Index(
                fields=["worker", "updated_at"],
                condition=Q(status="streaming"),
                name="msg_streaming",
            ),
        ]
        constraints = [
            # One turn per send, however often the frame arrives, from any
            # socket on any worker, into any conversation. A resent frame finds
            # its turn here too (it may have started a conversation the page
            # doesn't know yet).
            models.UniqueConstraint(
                fields=["sender", "client_id"],
                condition=Q(sender__isnull=False),
                name="msg_unique_sender_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


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


# --- Usage, limits, review and sign-up (admin side) ------------------------------


class UserLimits(models.Model):
    """One person's limits. Empty means the site default; 0 means unlimited.

    The row is also the lock that serialises a person's turn starts: see
    chat.limits.check_turn.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="limits",
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Tokens (prompt + completion) per calendar day. Empty: the site default; 0: "
        "unlimited.",
    )
    tokens_per_month = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Tokens per calendar month. Empty: the site default; 0: unlimited.",
    )
    replies_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Replies started in any 60 seconds. Empty: the site default; 0: unlimited.",
    )
    concurrent_generations = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Replies generating at the same time. Empty: the site default; 0: unlimited.",
    )

    class Meta:
        verbose_name = "limits"
        verbose_name_plural = "limits"

    def __str__(self) -> str:
        return f"Limits of user {self.user_id}"


class DailyUsage(models.Model):
    """Tokens one person spent on one day with one model: the usage ledger.

    Written by chat.usage.record_reply as each reply is saved, so it keeps the
    figures of conversations deleted since (their tokens were spent all the
    same), and the usage pages and limit checks read a few hundred rows
    instead of every message.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField(help_text="The reply's creation day, in the site's time zone.")
    model = models.CharField(max_length=100)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    estimated_total_tokens = models.PositiveBigIntegerField(
        default=0, help_text="Part of total_tokens estimated here (the upstream sent no usage)."
    )
    estimated_replies = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "token usage"
        verbose_name_plural = "token usage"
        constraints = [
            # One row per person, day and model; record_reply adds to it.
            models.UniqueConstraint(fields=["user", "day", "model"], name="usage_user_day_model"),
        ]
        indexes = [
            # The usage page's windows over all users (today, 7 and 30 days).
            models.Index(fields=["day"], name="usage_day"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.model}: {self.total_tokens}"


class ConversationAccess(models.Model):
    """An admin opened someone else's conversation in the admin."""

    admin = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="conversation_accesses",
    )
    admin_username = models.CharField(max_length=150, help_text="Kept if the admin is deleted.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    owner_username = models.CharField(max_length=150, help_text="Kept if the owner is deleted.")
    conversation = models.ForeignKey(
        Conversation,
        null=True,
        on_delete=models.SET_NULL,
        related_name="accesses",
        help_text="Empty once the conversation is deleted.",
    )
    conversation_title = models.CharField(max_length=200, blank=True)
    content_shown = models.BooleanField(
        help_text="Whether the messages' text was shown (GLMWEB_ADMIN_CAN_READ_CONVERSATIONS)."
    )
    accessed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "conversation access"
        verbose_name_plural = "conversation accesses"
        ordering = ["-accessed_at"]

    def __str__(self) -> str:
        return f"{self.admin_username} opened {self.owner_username}'s conversation"


class SignupApproval(models.Model):
    """An account created while sign-up needs approval; inactive until approved."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="signup_approval",
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Sign-up of user {self.user_id}"


class Worker(models.Model):
    """A worker process's heartbeat, written every few seconds while it streams replies.

    Other workers read it to tell a reply that is slow from one whose worker
    was killed (chat.heartbeat).
    """

    id = models.CharField(
        primary_key=True, max_length=64, help_text="The worker's GLMWEB_WORKER_ID."
    )
    last_seen = models.DateTimeField(help_text="Its last heartbeat.")

    def __str__(self) -> str:
        return f"{self.id} (seen {self.last_seen:%Y-%m-%d %H:%M:%S})"


def insert_new(*groups: list[models.Model]) -> None:
    """Save new rows, each group of one model in one INSERT, as ``bulk_create`` does.

    No signals are sent. Each statement is built once per model and row count.
    Django builds it anew for every call: of a turn's start (0.65 ms on SQLite,
    2.2 ms on PostgreSQL, where Django 5.2 passes the rows as arrays to UNNEST)
    that was 0.12 and 0.46 ms, and 200 chats starting at once wait for each
    other's starts. PostgreSQL gets the statements in one round trip.
    """
    statements = [_insert_statement(type(rows[0]), len(rows)) for rows in groups]
    values = [_values(fields, rows) for (fields, _), rows in zip(statements, groups, strict=True)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # Django binds client-side: several go as one
            cursor.execute("; ".join(sql for _, sql in statements), [*chain(*values)])
        else:
            for (_, sql), params in zip(statements, values, strict=True):
                cursor.execute(sql, params)
    for rows in groups:
        for row in rows:
            row._state.adding = False
            row._state.db = connection.alias


def _values(fields: list[models.Field], rows: list[models.Model]) -> list[Any]:
    return [
        field.get_db_prep_save(field.pre_save(row, True), connection)
        for row in rows
        for field in fields
    ]


@cache
def _insert_statement(model: type[models.Model], count: int) -> tuple[list[models.Field], str]:
    fields = model._meta.local_concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * count)
    return fields, f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {values}"
