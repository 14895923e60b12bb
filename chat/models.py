from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def owned_by(self, user: object) -> ConversationQuerySet:
        return self.filter(owner=user)

    def for_sidebar(self) -> ConversationQuerySet:
        return self.only("id", "title", "updated_at").order_by("-updated_at")


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True, help_text="Shown in the sidebar.")
    model = models.CharField(max_length=100, help_text="Upstream model name used for replies.")
    system_prompt = models.TextField(blank=True)
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="Sampling parameters sent upstream: temperature, top_p, max_tokens, stop.",
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
            # One turn per send, however often the frame arrives.
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~Q(client_id=""),
                name="msg_unique_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"
