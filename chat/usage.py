"""Token usage: the ledger a saved reply adds to, and the figures the usage pages show.

`DailyUsage` holds one row per person, day and model. `record_reply` adds a
reply's tokens to it in the transaction that saves the reply, so the ledger's
sums are exactly the sums of the saved replies' figures: the upstream's own
`usage` where it sent one, our estimate (counted apart) where it didn't. Pages
read the ledger (a few hundred thousand rows at most) instead of aggregating
every message: bench/admin_pages.py has the numbers that decided it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat import limits
from chat.models import Conversation, DailyUsage, Message, UserLimits

CHART_DAYS = 30


# --- Writing --------------------------------------------------------------------


def record_reply(reply_id: uuid.UUID) -> None:
    """Add a just-saved reply's tokens to its owner's ledger row for today. Once per reply.

    One statement: the reply's figures are read and added in the database, so
    two replies finishing at once on two workers both count (no read-modify-write).
    A reply counts on the day it was saved, as `ledger_from_messages` assumes.
    """
    message, conversation = Message._meta, Conversation._meta
    ledger = DailyUsage._meta.db_table
    sql = f"""
        INSERT INTO {ledger} (user_id, day, model, prompt_tokens, completion_tokens,
            total_tokens, replies, estimated_total_tokens, estimated_replies)
        SELECT c.owner_id, %s, m.model, COALESCE(m.prompt_tokens, 0),
            COALESCE(m.completion_tokens, 0), m.total_tokens, 1,
            CASE WHEN m.usage_estimated THEN m.total_tokens ELSE 0 END,
            CASE WHEN m.usage_estimated THEN 1 ELSE 0 END
        FROM {message.db_table} m JOIN {conversation.db_table} c ON c.id = m.conversation_id
        WHERE m.id = %s AND m.total_tokens IS NOT NULL
        ON CONFLICT (user_id, day, model) DO UPDATE SET
            prompt_tokens = {ledger}.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = {ledger}.completion_tokens + excluded.completion_tokens,
            total_tokens = {ledger}.total_tokens + excluded.total_tokens,
            replies = {ledger}.replies + 1,
            estimated_total_tokens = {ledger}.estimated_total_tokens
                + excluded.estimated_total_tokens,
            estimated_replies = {ledger}.estimated_replies + excluded.estimated_replies
    """
    day = connection.ops.adapt_datefield_value(timezone.localdate())
    reply = message.pk.get_db_prep_value(reply_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [day, reply])


def record_title(conversation_id: uuid.UUID, prompt_tokens: int, completion_tokens: int) -> None:
    """Add a generated title's tokens to the owner's ledger row for today (not a reply).

    Like `record_reply`, one statement; `ledger_from_titles` counts them again
    on the conversation's creation day, which is the day its first reply ends.
    """
    conversation, ledger = Conversation._meta, DailyUsage._meta.db_table
    sql = f"""
        INSERT INTO {ledger} (user_id, day, model, prompt_tokens, completion_tokens,
            total_tokens, replies, estimated_total_tokens, estimated_replies)
        SELECT c.owner_id, %s, c.model, %s, %s, %s, 0, 0, 0
        FROM {conversation.db_table} c WHERE c.id = %s
        ON CONFLICT (user_id, day, model) DO UPDATE SET
            prompt_tokens = {ledger}.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = {ledger}.completion_tokens + excluded.completion_tokens,
            total_tokens = {ledger}.total_tokens + excluded.total_tokens
    """
    day = connection.ops.adapt_datefield_value(timezone.localdate())
    key = conversation.pk.get_db_prep_value(conversation_id, connection)
    total = prompt_tokens + completion_tokens
    with connection.cursor() as cursor:
        cursor.execute(sql, [day, prompt_tokens, completion_tokens, total, key])


def ledger_from_titles() -> Iterable[dict[str, Any]]:
    """Generated titles' tokens by owner, day and model, shaped like `ledger_from_messages`."""
    return (
        Conversation.objects.filter(title_prompt_tokens__isnull=False)
        .annotate(day=TruncDate("created_at"))
        .values("owner_id", "day", "model")
        .annotate(
            prompt=Sum("title_prompt_tokens", default=0),
            completion=Sum("title_completion_tokens", default=0),
        )
        .order_by()
    )


def ledger_from_messages(messages: Any = None) -> Iterable[dict[str, Any]]:
    """The ledger's rows computed from messages: for seeding, repairs and tests."""
    messages = Message.objects.all() if messages is None else messages
    return (
        messages.filter(role=Message.Role.ASSISTANT, total_tokens__isnull=False)
        # A reply counts on the day it was saved: its last update.
        .annotate(day=TruncDate("updated_at"))
        .values("conversation__owner_id", "day", "model")
        .annotate(
            prompt=Sum("prompt_tokens", default=0),
            completion=Sum("completion_tokens", default=0),
            total=Sum("total_tokens", default=0),
            replies=Count("id"),
            estimated_total=Sum("total_tokens", filter=Q(usage_estimated=True), default=0),
            estimated_replies=Count("id", filter=Q(usage_estimated=True)),
        )
        .order_by()
    )


def rebuild_ledger(batch_size: int = 5000) -> int:
    """Replace the ledger by what the saved messages add up to (deleted ones are lost)."""
    with transaction.atomic():
        DailyUsage.objects.all().delete()
        rows = {
            (row["conversation__owner_id"], row["day"], row["model"]): DailyUsage(
                user_id=row["conversation__owner_id"],
                day=row["day"],
                model=row["model"],
                prompt_tokens=row["prompt"],
                completion_tokens=row["completion"],
                total_tokens=row["total"],
                replies=row["replies"],
                estimated_total_tokens=row["estimated_total"],
                estimated_replies=row["estimated_replies"],
            )
            for row in ledger_from_messages().iterator(chunk_size=batch_size)
        }
        for row in ledger_from_titles().iterator(chunk_size=batch_size):
            key = (row["owner_id"], row["day"], row["model"])
            line = rows.setdefault(key, DailyUsage(user_id=key[0], day=key[1], model=key[2]))
            line.prompt_tokens += row["prompt"]
            line.completion_tokens += row["completion"]
            line.total_tokens += row["prompt"] + row["completion"]
        DailyUsage.objects.bulk_create(rows.values(), batch_size=batch_size)
    return len(rows)


# --- Reading ----------------------------------------------------------------------


@dataclass
class Tokens:
    prompt: int = 0
    completion: int = 0
    total: int = 0


@dataclass
class Windows:
    """A person's tokens over the standard periods."""

    today: Tokens = field(default_factory=Tokens)
    week: Tokens = field(default_factory=Tokens)
    month30: Tokens = field(default_factory=Tokens)
    all_time: Tokens = field(default_factory=Tokens)
    calendar_month: int = 0
    span: Tokens | None = None  # the chosen date range, when there is one
    replies: int = 0
    estimated_tokens: int = 0
    estimated_replies: int = 0


def _window_sums(day: date, start: date | None, end: date | None) -> dict[str, Any]:
    def sums(prefix: str, condition: Q | None) -> dict[str, Any]:
        return {
            f"{prefix}_{name}": Sum(f"{name}_tokens", filter=condition, default=0)
            for name in ("prompt", "completion", "total")
        }

    aggregates = {
        **sums("today", Q(day=day)),
        **sums("week", Q(day__gt=day - timedelta(days=7))),
        **sums("month30", Q(day__gt=day - timedelta(days=30))),
        **sums("all", None),
        "calendar_month": Sum("total_tokens", filter=Q(day__gte=day.replace(day=1)), default=0),
        "reply_count": Sum("replies", default=0),
        "estimated_tokens": Sum("estimated_total_tokens", default=0),
        "estimated_reply_count": Sum("estimated_replies", default=0),
    }
    if start or end:
        span = Q()
        if start:
            span &= Q(day__gte=start)
        if end:
            span &= Q(day__lte=end)
        aggregates |= {
            **sums("span", span),
            "span_reply_count": Sum("replies", filter=span, default=0),
        }
    return aggregates


def _windows(values: dict[str, Any], with_span: bool) -> Windows:
    def tokens(prefix: str) -> Tokens:
        return Tokens(
            values[f"{prefix}_prompt"], values[f"{prefix}_completion"], values[f"{prefix}_total"]
        )

    return Windows(
        today=tokens("today"),
        week=tokens("week"),
        month30=tokens("month30"),
        all_time=tokens("all"),
        calendar_month=values["calendar_month"],
        span=tokens("span") if with_span else None,
        replies=values["reply_count"],
        estimated_tokens=values["estimated_tokens"],
        estimated_replies=values["estimated_reply_count"],
    )


@dataclass
class UserUsage:
    """One line of the admin's usage page."""

    user_id: int
    username: str
    is_active: bool
    windows: Windows
    span_replies: int = 0
    conversations: int = 0
    last_active: datetime | None = None
    day_quota: int | None = None  # percent of the daily limit used today
    month_quota: int | None = None

    @property
    def quota(self) -> int | None:
        shares = [q for q in (self.day_quota, self.month_quota) if q is not None]
        return max(shares) if shares else None


def _percent(used: int, limit: int) -> int | None:
    return round(100 * used / limit) if limit else None


def all_users(start: date | None = None, end: date | None = None) -> list[UserUsage]:
    """Every person's figures: four queries however many people and messages."""
    day = limits.today()
    with_span = bool(start or end)
    by_user = {
        row["user_id"]: row
        for row in DailyUsage.objects.values("user_id")
        .annotate(**_window_sums(day, start, end))
        .order_by()
    }
    conversations = {
        row["owner_id"]: row
        for row in Conversation.objects.values("owner_id")
        .annotate(count=Count("id"), last=Max("updated_at"))
        .order_by()
    }
    own_limits = {row.user_id: row for row in UserLimits.objects.all()}
    empty = {**{key: 0 for key in _window_sums(day, start, end)}, "span_reply_count": 0}
    people = []
    for user in get_user_model().objects.only("id", "username", "is_active").order_by("id"):
        values = by_user.get(user.id, empty)
        if with_span and not values["span_reply_count"]:
            continue  # nothing in the chosen range
        windows = _windows(values, with_span)
        in_force = limits.effective(own_limits.get(user.id))
        chats = conversations.get(user.id, {})
        people.append(
            UserUsage(
                user_id=user.id,
                username=user.get_username(),
                is_active=user.is_active,
                windows=windows,
                span_replies=values.get("span_reply_count") or 0,
                conversations=chats.get("count", 0),
                last_active=chats.get("last"),
                day_quota=_percent(windows.today.total, in_force.tokens_per_day),
                month_quota=_percent(windows.calendar_month, in_force.tokens_per_month),
            )
        )
    return people


SORT_KEYS: dict[str, Any] = {
    "user": lambda u: u.username.lower(),
    "today": lambda u: u.windows.today.total,
    "week": lambda u: u.windows.week.total,
    "month30": lambda u: u.windows.month30.total,
    "all": lambda u: u.windows.all_time.total,
    "span": lambda u: u.windows.span.total if u.windows.span else 0,
    "conversations": lambda u: u.conversations,
    "replies": lambda u: u.windows.replies,
    "last_active": lambda u: u.last_active or datetime.min.replace(tzinfo=UTC),
    "quota": lambda u: -1 if u.quota is None else u.quota,
}


def windows_for(user_id: int) -> Windows:
    values = DailyUsage.objects.filter(user_id=user_id).aggregate(
        **_window_sums(limits.today(), None, None)
    )
    return _windows(values, with_span=False)


@dataclass
class Day:
    day: date
    prompt: int
    completion: int
    total: int
    estimated: int


def daily(user_id: int, days: int = CHART_DAYS) -> list[Day]:
    """The last `days` days, today last, days without use included as zeros."""
    last = limits.today()
    first = last - timedelta(days=days - 1)
    rows = {
        row["day"]: row
        for row in DailyUsage.objects.filter(user_id=user_id, day__gte=first, day__lte=last)
        .values("day")
        .annotate(
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            total=Sum("total_tokens"),
            estimated=Sum("estimated_total_tokens"),
        )
        .order_by()
    }
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = rows.get(day, {})
        result.append(
            Day(
                day,
                row.get("prompt", 0),
                row.get("completion", 0),
                row.get("total", 0),
                row.get("estimated", 0),
            )
        )
    return result


def by_model(user_id: int) -> list[dict[str, Any]]:
    since = limits.today() - timedelta(days=CHART_DAYS - 1)
    return list(
        DailyUsage.objects.filter(user_id=user_id)
        .values("model")
        .annotate(
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            total=Sum("total_tokens"),
            replies=Sum("replies"),
            estimated=Sum("estimated_total_tokens"),
            total_30d=Sum("total_tokens", filter=Q(day__gte=since), default=0),
        )
        .order_by("-total", "model")
    )


# --- The chart ----------------------------------------------------------------------

CHART_WIDTH = 720
CHART_HEIGHT = 200
CHART_LEFT = 64  # room for the axis labels
CHART_BOTTOM = 24


@dataclass
class Bar:
    day: Day
    x: float
    width: float
    prompt_y: float
    prompt_height: float
    completion_y: float
    completion_height: float
    label: str


def chart(days: list[Day]) -> dict[str, Any]:
    """Geometry of an inline SVG bar chart (prompt below completion), no script needed."""
    plot_width = CHART_WIDTH - CHART_LEFT - 8
    plot_height = CHART_HEIGHT - CHART_BOTTOM - 12
    top = max((d.total for d in days), default=0) or 1
    slot = plot_width / max(len(days), 1)
    base = CHART_HEIGHT - CHART_BOTTOM
    bars = []
    for index, day in enumerate(days):
        prompt_height = plot_height * day.prompt / top
        completion_height = plot_height * day.completion / top
        bars.append(
            Bar(
                day=day,
                x=round(CHART_LEFT + index * slot + slot * 0.15, 1),
                width=round(slot * 0.7, 1),
                prompt_y=round(base - prompt_height, 1),
                prompt_height=round(prompt_height, 1),
                completion_y=round(base - prompt_height - completion_height, 1),
                completion_height=round(completion_height, 1),
                label=day.day.strftime("%b %d") if index % 7 == 0 or index == len(days) - 1 else "",
            )
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "base": base,
        "top_y": base - plot_height,
        "max": top if any(d.total for d in days) else 0,
        "label_y": CHART_HEIGHT - 6,
        "right": CHART_WIDTH - 8,
        "axis_x": CHART_LEFT - 6,
        "max_label_y": base - plot_height + 4,
    }
