"""Conversations out and in: our JSON and Markdown, one person's whole data, and
imports of our JSON or of a ChatGPT export (`conversations.json`).

An import is all or nothing: the whole file is checked and saved in one
transaction, and a file we can't read gives an `ImportRefused` whose message
says what is wrong. Imported messages get new ids (a file can be imported
twice) and no token counts: those tokens weren't spent here, and the usage
ledger must stay the sum of what was (chat.usage.ledger).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat.models import Conversation, Message, Preset
from chat.params import InvalidParams, clean_params

CONVERSATION_FORMAT = "glmweb.conversation.v1"
ACCOUNT_FORMAT = "glmweb.account.v1"
MAX_CONVERSATIONS = 10_000
MAX_MESSAGES = 200_000
EXPORT_BATCH = 100


class ImportRefused(ValueError):
    """The message tells the person what is wrong with the file."""


# --- Export --------------------------------------------------------------------


def message_dict(message: Message) -> dict[str, Any]:
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
        "model": message.model,
        "usage": {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "total_tokens": message.total_tokens,
            "estimated": message.usage_estimated,
        },
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
        "rating": message.rating,
        "feedback_comment": message.feedback_comment,
        "created_at": message.created_at.isoformat(),
        "updated_at": message.updated_at.isoformat(),
    }


def conversation_dict(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    return {
        "format": CONVERSATION_FORMAT,
        "id": str(conversation.id),
        "title": conversation.title,
        "title_source": conversation.title_source,
        "pinned": conversation.pinned,
        "archived": conversation.archived,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "params": conversation.params,
        "current_leaf": str(conversation.current_leaf_id) if conversation.current_leaf_id else None,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "messages": [message_dict(m) for m in messages],
    }


def export_conversation(conversation: Conversation) -> dict[str, Any]:
    return conversation_dict(conversation, list(conversation.messages.order_by("created_at")))


def export_markdown(conversation: Conversation) -> str:
    """The branch shown, as a readable document (the JSON export has every branch)."""
    from chat.web.transcript import visible_branch

    lines = [f"# {conversation}", ""]
    lines.append(
        f"*{conversation.model} · {timezone.localtime(conversation.created_at):%Y-%m-%d %H:%M}*"
    )
    if conversation.system_prompt:
        lines += ["", "**System prompt:**", "", conversation.system_prompt]
    for message in visible_branch(conversation):
        lines += ["", "## You" if message.role == Message.Role.USER else "## Assistant", ""]
        if message.reasoning:
            quoted = "\n".join(f"> {line}" for line in message.reasoning.splitlines())
            lines += ["> **Thinking**", ">", quoted, ""]
        lines.append(message.content or "*(no text)*")
    return "\n".join(lines) + "\n"


def export_account(user: Any) -> Iterator[str]:
    """One person's data as one JSON document, in pieces: conversations are read in batches."""
    head = {
        "format": ACCOUNT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "account": {
            "username": user.get_username(),
            "email": user.email,
            "date_joined": user.date_joined.isoformat(),
        },
        "presets": [
            {
                "name": p.name,
                "model": p.model,
                "system_prompt": p.system_prompt,
                "params": p.params,
            }
            for p in Preset.objects.filter(owner=user)
        ],
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "conversations": ['
    conversations = (
        Conversation.objects.owned_by(user)
        .order_by("created_at")
        .prefetch_related("messages")
        .iterator(chunk_size=EXPORT_BATCH)
    )
    for index, conversation in enumerate(conversations):
        messages = sorted(conversation.messages.all(), key=lambda m: m.created_at)
        separator = "," if index else ""
        yield separator + json.dumps(conversation_dict(conversation, messages), ensure_ascii=False)
    yield "]}"


# --- Import ----------------------------------------------------------------------


@dataclass
class Draft:
    """A message read from a file, before it is saved."""

    key: str
    parent: str | None
    role: str
    content: str
    reasoning: str = ""
    status: str = Message.Status.COMPLETE
    finish_reason: str = ""
    model: str = ""
    created_at: datetime | None = None


@dataclass
class ConversationDraft:
    title: str
    messages: list[Draft]
    current: str | None = None
    title_source: str = Conversation.TitleSource.USER
    model: str = ""
    system_prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    archived: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


def import_file(user: Any, raw: bytes) -> list[Conversation]:
    """Read a whole file, then save all its conversations, or none."""
    if len(raw) > settings.GLMWEB_IMPORT_MAX_BYTES:
        raise ImportRefused(
            f"The file is larger than {_megabytes(settings.GLMWEB_IMPORT_MAX_BYTES)}."
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportRefused("The file isn't UTF-8 text.") from None
    except ValueError as error:
        raise ImportRefused(f"The file isn't valid JSON ({error}).") from None
    drafts = read_drafts(data)
    if not drafts:
        raise ImportRefused("The file has no conversations.")
    if len(drafts) > MAX_CONVERSATIONS:
        raise ImportRefused(f"A file can hold at most {MAX_CONVERSATIONS:,} conversations.")
    if sum(len(d.messages) for d in drafts) > MAX_MESSAGES:
        raise ImportRefused(f"A file can hold at most {MAX_MESSAGES:,} messages.")
    with transaction.atomic():
        return [_save(user, draft) for draft in drafts]


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def read_drafts(data: Any) -> list[ConversationDraft]:
    if isinstance(data, dict) and data.get("format") == CONVERSATION_FORMAT:
        return [_ours(data, 1)]
    if isinstance(data, dict) and data.get("format") == ACCOUNT_FORMAT:
        items = data.get("conversations")
        if not isinstance(items, list):
            raise ImportRefused("The file's “conversations” must be a list.")
        return [_ours(item, n) for n, item in enumerate(items, 1)]
    if isinstance(data, dict) and "mapping" in data:
        return [_chatgpt(data, 1)]
    if isinstance(data, list) and all(isinstance(i, dict) and "mapping" in i for i in data):
        return [_chatgpt(item, n) for n, item in enumerate(data, 1)]
    raise ImportRefused(
        "This isn't a conversation file we know: expected a glmweb export or "
        "a ChatGPT conversations.json."
    )


def _ours(item: Any, number: int) -> ConversationDraft:
    where = f"Conversation {number}"
    if not isinstance(item, dict):
        raise ImportRefused(f"{where} isn't an object.")
    if item.get("format", CONVERSATION_FORMAT) != CONVERSATION_FORMAT:
        raise ImportRefused(f"{where} has an unknown format {str(item.get('format'))[:40]!r}.")
    messages = item.get("messages")
    if not isinstance(messages, list):
        raise ImportRefused(f"{where} has no “messages” list.")
    drafts = []
    for index, message in enumerate(messages, 1):
        at = f"{where}, message {index}"
        if not isinstance(message, dict):
            raise ImportRefused(f"{at} isn't an object.")
        role = message.get("role")
        if role not in Message.Role.values:
            raise ImportRefused(
                f"{at} has role {str(role)[:20]!r}; only user and assistant are kept."
            )
        status = message.get("status", Message.Status.COMPLETE)
        if status not in Message.Status.values:
            raise ImportRefused(f"{at} has an unknown status {str(status)[:20]!r}.")
        if status == Message.Status.STREAMING:
            status = Message.Status.INTERRUPTED  # nothing streams it here
        drafts.append(
            Draft(
                key=_text(message.get("id"), f"{at}: id", required=True),
                parent=_text(message.get("parent"), f"{at}: parent") or None,
                role=role,
                content=_text(message.get("content"), f"{at}: content"),
                reasoning=_text(message.get("reasoning"), f"{at}: reasoning"),
                status=status,
                finish_reason=_text(message.get("finish_reason"), f"{at}: finish_reason")[:32],
                model=_text(message.get("model"), f"{at}: model")[:100],
                created_at=_moment(message.get("created_at"), f"{at}: created_at"),
            )
        )
    try:
        params = clean_params(item.get("params") or {})
    except InvalidParams as error:
        raise ImportRefused(f"{where}: {error}") from None
    title_source = item.get("title_source", Conversation.TitleSource.USER)
    if title_source not in Conversation.TitleSource.values:
        title_source = Conversation.TitleSource.USER
    return _checked(
        ConversationDraft(
            title=_text(item.get("title"), f"{where}: title")[:200],
            messages=drafts,
            current=_text(item.get("current_leaf"), f"{where}: current_leaf") or None,
            title_source=title_source,
            model=_text(item.get("model"), f"{where}: model")[:100],
            system_prompt=_text(item.get("system_prompt"), f"{where}: system_prompt"),
            params=params,
            pinned=item.get("pinned") is True,
            archived=item.get("archived") is True,
            created_at=_moment(item.get("created_at"), f"{where}: created_at"),
            updated_at=_moment(item.get("updated_at"), f"{where}: updated_at"),
        ),
        where,
    )


def _chatgpt(item: dict[str, Any], number: int) -> ConversationDraft:
    """A ChatGPT conversation: its node tree, keeping user and assistant text only.

    A skipped node (system, tool, an image) hands its children to its nearest
    kept ancestor, so the branches stay as they were.
    """
    where = f"Conversation {number}"
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise ImportRefused(f"{where}: “mapping” must be an object.")
    kept: dict[str, Draft] = {}
    parents: dict[str, str | None] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise ImportRefused(f"{where}: node {key[:40]!r} isn't an object.")
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise ImportRefused(f"{where}: node {key[:40]!r} has a bad parent.")
        parents[key] = parent
        draft = _chatgpt_message(node.get("message"), key, f"{where}, node {key[:40]!r}")
        if draft is not None:
            kept[key] = draft
    for key, draft in kept.items():
        draft.parent = _kept_ancestor(parents.get(key), parents, kept, where)
    current = item.get("current_node")
    return _checked(
        ConversationDraft(
            title=_text(item.get("title"), f"{where}: title")[:200],
            messages=list(kept.values()),
            current=_kept_ancestor(current, parents, kept, where)
            if isinstance(current, str)
            else None,
            created_at=_epoch(item.get("create_time")),
            updated_at=_epoch(item.get("update_time")),
        ),
        where,
    )


def _chatgpt_message(message: Any, key: str, at: str) -> Draft | None:
    if message is None:
        return None  # the tree's root
    if not isinstance(message, dict):
        raise ImportRefused(f"{at}: “message” isn't an object.")
    role = (message.get("author") or {}).get("role")
    content = message.get("content") or {}
    if role not in ("user", "assistant") or not isinstance(content, dict):
        return None
    if content.get("content_type", "text") != "text":
        return None
    parts = content.get("parts") or []
    if not isinstance(parts, list):
        raise ImportRefused(f"{at}: “parts” must be a list.")
    text = "\n".join(p for p in parts if isinstance(p, str)).strip()
    if not text:
        return None
    return Draft(
        key=key, parent=None, role=role, content=text, created_at=_epoch(message.get("create_time"))
    )


def _kept_ancestor(
    key: str | None,
    parents: dict[str, str | None],
    kept: dict[str, Draft],
    where: str,
) -> str | None:
    seen: set[str] = set()
    while key is not None and key not in kept:
        if key in seen:
            raise ImportRefused(f"{where}: its messages form a loop.")
        seen.add(key)
        key = parents.get(key)
    return key


def _checked(draft: ConversationDraft, where: str) -> ConversationDraft:
    """Every parent is in the file and the tree has no loops; parents come first."""
    by_key = {m.key: m for m in draft.messages}
    if len(by_key) != len(draft.messages):
        raise ImportRefused(f"{where}: two messages have the same id.")
    ordered: list[Draft] = []
    placed: set[str] = set()
    for message in draft.messages:
        chain = []
        key: str | None = message.key
        while key is not None and key not in placed:
            if key in chain:
                raise ImportRefused(f"{where}: its messages form a loop.")
            if key not in by_key:
                raise ImportRefused(
                    f"{where}: a message answers {key[:40]!r}, which isn't in the file."
                )
            chain.append(key)
            key = by_key[key].parent
        for key in reversed(chain):
            placed.add(key)
            ordered.append(by_key[key])
    draft.messages = ordered
    if draft.current is not None and draft.current not in by_key:
        draft.current = None
    return draft


def _save(user: Any, draft: ConversationDraft) -> Conversation:
    first_user = next((m.content for m in draft.messages if m.role == Message.Role.USER), "")
    conversation = Conversation.objects.create(
        owner=user,
        title=draft.title or Conversation.title_from(first_user),
        title_source=draft.title_source if draft.title else Conversation.TitleSource.MESSAGE,
        model=draft.model or settings.UPSTREAM_MODEL,
        system_prompt=draft.system_prompt,
        params=draft.params,
        pinned=draft.pinned,
        archived=draft.archived,
    )
    # Missing times keep the file's order: a second apart, before now.
    fallback = timezone.now() - timedelta(seconds=len(draft.messages))
    ids = {m.key: uuid.uuid4() for m in draft.messages}
    rows = [
        Message(
            id=ids[m.key],
            conversation=conversation,
            parent_id=ids[m.parent] if m.parent else None,
            role=m.role,
            content=m.content,
            reasoning=m.reasoning,
            status=m.status,
            finish_reason=m.finish_reason,
            model=m.model if m.role == Message.Role.ASSISTANT else "",
        )
        for m in draft.messages
    ]
    Message.objects.bulk_create(rows, batch_size=500)
    # created_at is set on create whatever we pass; bulk_update writes the file's times.
    for index, (row, message) in enumerate(zip(rows, draft.messages, strict=True)):
        row.created_at = row.updated_at = message.created_at or fallback + timedelta(seconds=index)
    Message.objects.bulk_update(rows, ["created_at", "updated_at"], batch_size=500)
    created = draft.created_at or (rows[0].created_at if rows else timezone.now())
    updated = draft.updated_at or (max(r.created_at for r in rows) if rows else created)
    Conversation.objects.filter(id=conversation.id).update(
        current_leaf_id=ids[draft.current] if draft.current else None,
        created_at=created,
        updated_at=updated,
    )
    conversation.refresh_from_db()
    return conversation


def _text(value: Any, what: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and required:
        return str(value)
    if not isinstance(value, str) or (required and not value):
        raise ImportRefused(f"{what} must be text.")
    return value


def _moment(value: Any, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ImportRefused(f"{what} isn't a date and time.")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 4e9:
        return datetime.fromtimestamp(value, tz=UTC)
    return None
