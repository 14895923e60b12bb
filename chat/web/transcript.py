"""Reading conversations: what a page shows. Plain sync functions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from chat.models import Conversation, Message


def visible_branch(conversation: Conversation) -> list[Message]:
    """The messages shown, oldest first: one query however long the conversation."""
    return conversation.shown_branch(_all_messages(conversation))


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
    if stale and conversation.messages.filter(id__in=stale).mark_interrupted():
        for message in messages:
            if message.id in stale:
                message.refresh_from_db()


def transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """Every message of every branch, oldest first; ``shown`` marks the branch shown.

    The page walks the tree itself (the "2/3" version controls), so it gets it whole,
    from one query.
    """
    messages = _all_messages(conversation)
    shown = {message.id for message in conversation.shown_branch(messages)}
    return [{**message_dict(message), "shown": message.id in shown} for message in messages]


def page_transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """`transcript` as the chat page carries it inline, its empty fields left out
    (the page reads a missing field as empty): a long conversation's page is smaller."""
    return [
        {key: value for key, value in item.items() if value is not None and value != ""}
        for item in transcript(conversation)
    ]


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
