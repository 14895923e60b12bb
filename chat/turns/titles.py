"""Generated titles: after a conversation's first reply, the model names it.

The first message's opening words are the title from the start
(`Conversation.title_from`); once the first reply is saved, a short non-streamed
request asks the model for a better one. Any failure keeps the first-message
title. A title the owner set is never replaced, and the request's tokens count
in usage like a reply's (`usage.record_title`). Open pages hear of a new title
through a `title` event to the conversation's group.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat import upstream
from chat.models import Conversation, Message
from chat.turns import control
from chat.turns.config import upstream_config
from chat.turns.context import estimate_usage
from chat.usage import ledger as usage

log = logging.getLogger(__name__)

TITLE_CHARS = 60
# A "title" longer than this is the model answering the conversation instead.
ABSURD_CHARS = 200
EXCERPT_CHARS = 1500
QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb\u300c\u300d"
INSTRUCTION = (
    "Write a short title (3 to 6 words) for the conversation above, in its language. "
    "Answer with the title only: no quotes, no markdown, no final period."
)

# Title requests running in this process; holding them keeps them alive.
_tasks: set[asyncio.Task[None]] = set()


def start(conversation_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    """Name the conversation in the background, if this was its first reply."""
    if not settings.GLMWEB_GENERATED_TITLES:
        return
    task = asyncio.create_task(generate_title(conversation_id, reply_id))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def wait_for_titles() -> None:
    """Until the title requests running now have ended (tests, shutdown)."""
    while _tasks:
        await asyncio.gather(*_tasks, return_exceptions=True)


async def generate_title(conversation_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    try:
        request = await database_sync_to_async(title_request)(conversation_id, reply_id)
        if request is None:
            return
        text, used = await _ask(request)
        title = clean_title(text)
        saved = await database_sync_to_async(save_title)(conversation_id, title, used)
        if saved is not None:
            await announce(conversation_id, saved)
    except (upstream.UpstreamError, TimeoutError) as error:
        log.info("title not generated: %s", error, extra={"conversation": str(conversation_id)})
    except Exception:
        log.exception("title not generated", extra={"conversation": str(conversation_id)})


async def _ask(request: upstream.ChatRequest) -> tuple[str, upstream.Usage]:
    if settings.GLMWEB_DEMO_MODEL:
        return demo_title(request), upstream.Usage(0, 0, 0)
    async with asyncio.timeout(settings.GLMWEB_TITLE_TIMEOUT_SECONDS):
        text, used = await upstream.complete_chat(request, upstream_config())
    # Counted like a reply whose upstream sent no usage: estimated.
    return text, used or estimate_usage(request, text, "")


def title_request(conversation_id: uuid.UUID, reply_id: uuid.UUID) -> upstream.ChatRequest | None:
    """The request naming the conversation, or None when it needs no generated title."""
    conversation = Conversation.objects.filter(
        id=conversation_id,
        title_source=Conversation.TitleSource.MESSAGE,
        title_prompt_tokens__isnull=True,
    ).first()
    if conversation is None:
        return None
    reply = (
        Message.objects.select_related("parent")
        .filter(id=reply_id, conversation=conversation, role=Message.Role.ASSISTANT)
        .first()
    )
    # Only the first exchange: its question has no parent.
    if reply is None or not reply.content or reply.parent is None or reply.parent.parent_id:
        return None
    return upstream.ChatRequest(
        model=conversation.model,
        messages=[
            {"role": "user", "content": reply.parent.content[:EXCERPT_CHARS]},
            {"role": "assistant", "content": reply.content[:EXCERPT_CHARS]},
            {"role": "user", "content": INSTRUCTION},
        ],
        max_tokens=60,
        temperature=0.3,
    )


def demo_title(request: upstream.ChatRequest) -> str:
    """The offline demo model's title: the first message's opening words."""
    words = re.findall(r"[\w'\u2019-]+", request.messages[0]["content"])[:6]
    return " ".join(words).capitalize()


def clean_title(text: str) -> str:
    """The title in a model's answer, or "" when the answer isn't one."""
    text = re.sub(r"<think>.*?(</think>|$)", "", text, flags=re.DOTALL)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or len(lines[0]) > ABSURD_CHARS:
        return ""
    line = re.sub(r"^(#+\s*|[-*>]\s+)", "", lines[0])
    line = re.sub(r"^\**\s*title\s*\**\s*[:\uff1a]\s*", "", line, flags=re.IGNORECASE)
    line = re.sub(r"[*_`~]+", "", line)
    line = line.strip().strip(QUOTES).strip()
    line = re.sub(r"[.。]+$", "", line).strip()
    line = " ".join(line.split())
    if not re.search(r"\w", line):
        return ""
    return Conversation.title_from(line)[:TITLE_CHARS]


def save_title(conversation_id: uuid.UUID, title: str, used: upstream.Usage) -> str | None:
    """Count the request's tokens; set the title unless its owner named it meanwhile.

    Returns the new title, or None when it stays as it was.
    """
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update()
            .only("id", "title", "title_source", "title_prompt_tokens", "title_completion_tokens")
            .filter(id=conversation_id)
            .first()
        )
        if conversation is None:
            return None  # deleted meanwhile; the tokens were spent on nothing saved
        fields: dict[str, Any] = {
            "title_prompt_tokens": (conversation.title_prompt_tokens or 0) + used.prompt_tokens,
            "title_completion_tokens": (conversation.title_completion_tokens or 0)
            + used.completion_tokens,
        }
        renamed = bool(title) and conversation.title_source == Conversation.TitleSource.MESSAGE
        if renamed:
            fields.update(title=title, title_source=Conversation.TitleSource.MODEL)
        # update(), not save(): a title is no activity, the sidebar order stays.
        Conversation.objects.filter(id=conversation_id).update(**fields)
        usage.record_title(conversation_id, used.prompt_tokens, used.completion_tokens)
    return title if renamed else None


async def announce(conversation_id: uuid.UUID, title: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "title", "conversation": str(conversation_id), "title": title}
    await layer.group_send(
        control.conversation_group(conversation_id), {"type": "chat.title", "event": event}
    )
