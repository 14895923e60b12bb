"""The figures the usage pages show, read from the ledger (chat.usage.ledger): a
person's tokens over the standard periods, by day and by model, and every person's
line on the admin's usage page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, Sum

from chat.models import Conversation, DailyUsage, UserLimits
from chat.usage import limits, policy

CHART_DAYS = 30


@dataclass
class Tokens:
    prompt: int = 0
    completion: int = 0
    total: int = 0
    cost: Decimal = Decimal(0)

    @property
    def cents(self) -> Decimal:
        return self.cost.quantize(limits.CENT, ROUND_HALF_UP)


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
            **{
                f"{prefix}_{name}": Sum(f"{name}_tokens", filter=condition, default=0)
                for name in ("prompt", "completion", "total")
            },
            f"{prefix}_cost": Sum("cost", filter=condition, default=Decimal(0)),
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


def _windows(values: Mapping[str, Any], with_span: bool) -> Windows:
    def tokens(prefix: str) -> Tokens:
        return Tokens(
            values[f"{prefix}_prompt"],
            values[f"{prefix}_completion"],
            values[f"{prefix}_total"],
            Decimal(values[f"{prefix}_cost"]),
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
    """Every person's figures: six queries however many people and messages."""
    day = limits.today()
    with_span = bool(start or end)
    by_user: dict[int, Mapping[str, Any]] = {
        row["user_id"]: row
        for row in DailyUsage.objects.values("user_id")
        .annotate(**_window_sums(day, start, end))
        .order_by()
    }
    conversations: dict[int, Mapping[str, Any]] = {
        row["owner_id"]: row
        for row in Conversation.objects.values("owner_id")
        .annotate(count=Count("id"), last=Max("updated_at"))
        .order_by()
    }
    own_limits = {row.user_id: row for row in UserLimits.objects.all()}
    groups = policy.policies_by_user()
    empty: Mapping[str, Any] = {
        **{key: 0 for key in _window_sums(day, start, end)},
        "span_reply_count": 0,
    }
    people = []
    for user in get_user_model().objects.only("id", "username", "is_active").order_by("id"):
        values = by_user.get(user.id, empty)
        if with_span and not values["span_reply_count"]:
            continue  # nothing in the chosen range
        windows = _windows(values, with_span)
        in_force = policy.effective(own_limits.get(user.id), groups.get(user.id, []))
        chats: Mapping[str, Any] = conversations.get(user.id, {})
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
    rows: dict[date, Mapping[str, Any]] = {
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
        row: Mapping[str, Any] = rows.get(day, {})
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


@dataclass
class QuietDays:
    """A run of days without use: one line of the days table instead of a row of zeros each."""

    first: date
    last: date
    quiet: bool = True

    @property
    def count(self) -> int:
        return (self.last - self.first).days + 1


def day_rows(days: list[Day]) -> list[Day | QuietDays]:
    """Newest first, each day with use and each run of days without as one line; empty
    when no day had any use (the page then says so instead)."""
    if not any(d.total for d in days):
        return []
    rows: list[Day | QuietDays] = []
    for day in reversed(days):
        if day.total:
            rows.append(day)
        elif rows and isinstance(rows[-1], QuietDays):
            rows[-1].first = day.day
        else:
            rows.append(QuietDays(day.day, day.day))
    return rows


def by_model(user_id: int) -> Sequence[Mapping[str, Any]]:
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
            cost=Sum("cost"),
        )
        .order_by("-total", "model")
    )
