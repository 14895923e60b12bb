"""Reading conversations: what a page or a rejoining socket shows. Plain sync functions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from chat.generation import mark_interrupted, shown_branch
from chat.models import Conversation, Message


def owns_conversation(user_id: int | None, conversation_id: str) -> bool:
    if user_id is None or not is_uuid(conversation_id):
        return False
    return Conversation.objects.filter(id=conversation_id, owner_id=user_id).exists()


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def visible_branch(conversation: Conversation) -> list[Message]:
    """The messages shown, oldest first: one query however long the conversation."""
    return shown_branch(conversation, _all_messages(conversation))


def _all_messages(conversation: Conversation) -> list[Message]:
    messages = list(conversation.messages.order_by("created_at"))
    _sweep_stale(conversation, messages)
    return messages


def _sweep_stale(conversation: Conversation, messages: list[Message]) -> None:
    stale_before = timezone.now() - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    stale = [
        m.id
        for m in messages
        if m.status == Message.Status.STREAMING and m.updated_at < stale_before
    ]
    if stale and mark_interrupted(conversation.messages.filter(id__in=stale)):
        for message in messages:
            if message.id in stale:
                message.refresh_from_db()


def transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """Every message of every branch, oldest first; ``shown`` marks the branch shown.

    The page walks the tree itself (the "2/3" version controls), so it gets it whole,
    from one query.
    """
    messages = _all_messages(conversation)
    shown = {message.id for message in shown_branch(conversation, messages)}
    return [{**message_dict(message), "shown": message.id in shown} for message in messages]


def message_dict(message: Message) -> dict[str, Any]:
    usage = None
    if message.total_tokens is not None:
        usage = {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "total_tokens": message.total_tokens,
            "estimated": message.usage_estimated,
        }
    return {
        "id": str(message.id),
        "parent": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "status": message.status,
        "finish_reason": message.finish_reason,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "usage": usage,
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
        "created_at": message.created_at.isoformat(),
        "model": message.model,
        "context_left_out": message.context_left_out,
        "rating": message.rating,
        "feedback_comment": message.feedback_comment,
    }


def reply_state(conversation_id: str) -> dict[str, Any] | None:
    """The reply being written (else the newest) as a snapshot's fields, for a socket that joins."""
    replies = Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.ASSISTANT
    ).order_by("-created_at")
    # A continued reply streams again while a newer sibling may exist.
    reply = replies.filter(status=Message.Status.STREAMING).first() or replies.first()
    if reply is None:
        return None
    return {
        "reply": str(reply.id),
        "content": reply.content,
        "reasoning": reply.reasoning,
        "status": reply.status,
        "model": reply.model,
        "parent": str(reply.parent_id) if reply.parent_id else None,
        "error_message": reply.error_message,
    }
