"""Messages: the tree of a conversation, and the states of a reply.

A message's parent is the message it answers or follows; siblings are
alternative branches. A reply is ``streaming`` while a turn writes it, then
complete, stopped, an error, or interrupted (its worker died or restarted).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from itertools import chain
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from chat.models.conversations import Conversation

INTERRUPTED_MESSAGE = "The reply was interrupted by a server restart. The text so far is kept."


class MessageQuerySet(models.QuerySet["Message"]):
    def streaming(self) -> MessageQuerySet:
        return self.filter(status=Message.Status.STREAMING)

    def mark_interrupted(self) -> int:
        """Mark replies that no live task streams any more; their checkpointed text stays."""
        return self.streaming().update(
            status=Message.Status.INTERRUPTED,
            error_code="interrupted",
            error_message=INTERRUPTED_MESSAGE,
            updated_at=timezone.now(),
        )

    def insert_new(
        self, messages: list[Message], new_conversation: Conversation | None = None
    ) -> None:
        """Save new messages (after their new conversation, if any), as ``bulk_create`` would.

        No signals are sent. Each statement is built once per model and row
        count. Django builds it anew for every call: of a turn's start (0.65 ms
        on SQLite, 2.2 ms on PostgreSQL, where Django 5.2 passes the rows as
        arrays to UNNEST) that was 0.12 and 0.46 ms, and 200 chats starting at
        once wait for each other's starts. PostgreSQL gets the statements in one
        round trip.
        """
        groups: list[list[models.Model]] = [list(messages)]
        if new_conversation is not None:
            groups.insert(0, [new_conversation])
        _insert(groups)


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
        "token limits while it streams; its saved usage replaces them (chat.usage.limits).",
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

    objects = MessageQuerySet.as_manager()

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

    def branch_in(self, messages: list[Message]) -> list[Message]:
        """This message and its ancestors among ``messages``, oldest first."""
        by_id = {message.id: message for message in messages}
        branch: list[Message] = []
        node: Message | None = self
        while node is not None:
            branch.append(node)
            node = by_id.get(node.parent_id) if node.parent_id else None
        branch.reverse()
        return branch

    # --- A reply's states -----------------------------------------------------

    @classmethod
    def new_reply(
        cls,
        conversation: Conversation,
        parent: Message,
        *,
        context_left_out: int = 0,
        reserved_tokens: int = 0,
    ) -> Message:
        """An empty reply to ``parent``, streaming on this worker; not saved."""
        return cls(
            conversation=conversation,
            role=cls.Role.ASSISTANT,
            status=cls.Status.STREAMING,
            parent=parent,
            model=conversation.model,
            worker=settings.GLMWEB_WORKER_ID,
            context_left_out=context_left_out,
            reserved_tokens=reserved_tokens,
        )

    def can_continue(self) -> bool:
        """A reply cut at the length limit, with nothing after it, can be continued."""
        return self.finish_reason == "length" and not self.children.exists()

    def resume_streaming(self, *, context_left_out: int, reserved_tokens: int) -> None:
        """Stream more of this reply on this worker (saved)."""
        self.status = self.Status.STREAMING
        self.finish_reason = ""
        self.worker = settings.GLMWEB_WORKER_ID
        self.context_left_out, self.reserved_tokens = context_left_out, reserved_tokens
        self.save(
            update_fields=[
                "status",
                "finish_reason",
                "worker",
                "context_left_out",
                "reserved_tokens",
                "updated_at",
            ]
        )


def _insert(groups: list[list[models.Model]]) -> None:
    # Each group: rows of one model, in one INSERT.
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


def _values(fields: Sequence[models.Field[Any, Any]], rows: list[models.Model]) -> list[Any]:
    return [
        field.get_db_prep_save(field.pre_save(row, True), connection)
        for row in rows
        for field in fields
    ]


@cache
def _insert_statement(
    model: type[models.Model], count: int
) -> tuple[Sequence[models.Field[Any, Any]], str]:
    fields = model._meta.local_concrete_fields
    quote = connection.ops.quote_name
    # Concrete fields have a column.
    columns = ", ".join(quote(field.column or field.attname) for field in fields)
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * count)
    return fields, f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {values}"
