"""One person's list of conversations: the sidebar's pages, date groups, search,
and the owner's actions on a conversation (rename, pin, archive). Plain sync functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format

from chat.models import Conversation, Message
from chat.text import one_line

SEARCH_RESULTS = 50
SEARCH_MAX_CHARS = 200
SNIPPET_CHARS = 120
TITLE_MAX_CHARS = 200


class InvalidTitle(ValueError):
    """The message says what a title may be."""


# --- Date groups ------------------------------------------------------------------


def date_group(conversation: Conversation, today: date) -> str:
    """The sidebar heading a conversation goes under, by its last activity."""
    if conversation.pinned and not conversation.archived:
        return "Pinned"
    day = timezone.localdate(conversation.updated_at)
    age = (today - day).days
    if age <= 0:
        return "Today"
    if age == 1:
        return "Yesterday"
    if age <= 7:
        return "Previous 7 days"
    if age <= 30:
        return "Previous 30 days"
    if day.year == today.year:
        return date_format(day, "F")
    return date_format(day, "F Y")


@dataclass
class Group:
    label: str
    conversations: list[Conversation]


def grouped(conversations: list[Conversation]) -> list[Group]:
    """Consecutive conversations under their headings (they come newest first)."""
    today = timezone.localdate()
    groups: list[Group] = []
    for conversation in conversations:
        label = date_group(conversation, today)
        if not groups or groups[-1].label != label:
            groups.append(Group(label, []))
        groups[-1].conversations.append(conversation)
    return groups


# --- Pages ---------------------------------------------------------------------------


@dataclass
class Page:
    conversations: list[Conversation]
    next_offset: int | None

    @property
    def groups(self) -> list[Group]:
        return grouped(self.conversations)

    def as_dict(self) -> dict[str, Any]:
        today = timezone.localdate()
        return {
            "conversations": [summary(c, today) for c in self.conversations],
            "next": str(self.next_offset) if self.next_offset is not None else "",
        }


def sidebar_page(user: Any, *, archived: bool = False, offset: int = 0) -> Page:
    """A bounded slice of the list: a person with thousands of chats still gets a small page."""
    size = settings.GLMWEB_SIDEBAR_PAGE
    listed = Conversation.objects.owned_by(user).filter(archived=archived)
    ordering = ("-updated_at", "-id") if archived else ("-pinned", "-updated_at", "-id")
    rows = list(
        listed.only("id", "title", "pinned", "archived", "updated_at").order_by(*ordering)[
            offset : offset + size + 1
        ]
    )
    more = len(rows) > size
    return Page(rows[:size], offset + size if more else None)


def summary(conversation: Conversation, today: date | None = None) -> dict[str, Any]:
    today = today or timezone.localdate()
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "pinned": conversation.pinned,
        "archived": conversation.archived,
        "updated_at": conversation.updated_at.isoformat(),
        "group": date_group(conversation, today),
    }


# --- Search -------------------------------------------------------------------------------


def search(user: Any, query: str) -> list[dict[str, Any]]:
    """Conversations whose title or any message contains the words, newest first.

    Archived ones too (marked): search is how people find what they put away.
    """
    query = " ".join(query.split())[:SEARCH_MAX_CHARS]
    if not query:
        return []
    in_messages = Message.objects.filter(conversation__owner=user, content__icontains=query).values(
        "conversation_id"
    )
    found = list(
        Conversation.objects.owned_by(user)
        .filter(Q(title__icontains=query) | Q(id__in=in_messages))
        .only("id", "title", "pinned", "archived", "updated_at")
        .order_by("-updated_at")[:SEARCH_RESULTS]
    )
    snippets = _snippets([c.id for c in found], query)
    today = timezone.localdate()
    return [
        {
            **summary(c, today),
            "snippet": snippets.get(c.id, ""),
            "matched": "title" if query.lower() in c.title.lower() else "message",
        }
        for c in found
    ]


def _snippets(conversation_ids: list[uuid.UUID], query: str) -> dict[uuid.UUID, str]:
    """The text around the first match in each conversation's earliest matching message."""
    snippets: dict[uuid.UUID, str] = {}
    matches = (
        Message.objects.filter(conversation_id__in=conversation_ids, content__icontains=query)
        .order_by("conversation_id", "created_at")
        .values_list("conversation_id", "content")
    )
    for conversation_id, content in matches.iterator(chunk_size=200):
        if conversation_id not in snippets:
            snippets[conversation_id] = snippet(content, query)
    return snippets


def snippet(text: str, query: str) -> str:
    flat = " ".join(text.split())
    at = flat.lower().find(query.lower())
    if at < 0:
        return flat[:SNIPPET_CHARS]
    start = max(0, at - SNIPPET_CHARS // 3)
    end = min(len(flat), start + SNIPPET_CHARS)
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


# --- Actions -----------------------------------------------------------------------------
# update(), not save(): renaming, pinning or archiving is no activity, so the
# conversation keeps its place by date.


def rename(conversation: Conversation, title: str) -> Conversation:
    title = one_line(title)
    if not title:
        raise InvalidTitle("A title can't be empty.")
    if len(title) > TITLE_MAX_CHARS:
        raise InvalidTitle(f"A title can be at most {TITLE_MAX_CHARS} characters.")
    return _update(conversation, title=title, title_source=Conversation.TitleSource.USER)


def set_pinned(conversation: Conversation, pinned: bool) -> Conversation:
    return _update(conversation, pinned=pinned)


def set_archived(conversation: Conversation, archived: bool) -> Conversation:
    return _update(conversation, archived=archived)


def _update(conversation: Conversation, **fields: Any) -> Conversation:
    Conversation.objects.filter(id=conversation.id).update(**fields)
    for name, value in fields.items():
        setattr(conversation, name, value)
    return conversation


def parse_flag(value: str | None) -> bool:
    if value in ("true", "1", "on"):
        return True
    if value in ("false", "0", "off", ""):
        return False
    raise ValueError("value must be true or false.")
