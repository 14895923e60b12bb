"""Per-person limits: what applies to whom, and the check before a turn starts.

`check_turn` runs inside the transaction that starts a turn (chat.turns.starting
`begin_send`, `begin_regenerate`, ...), before anything goes upstream. It first
locks the person's `UserLimits` row, so on PostgreSQL two sends racing from two
tabs or two workers are counted one after the other: the second sees the first
one's reply, already streaming and counted. (SQLite's IMMEDIATE transactions
serialise all writers anyway.)

Tokens come from the usage ledger (chat.usage.ledger), which a reply reaches when it
is saved, and from the replies still streaming: each holds `reserved_tokens`
(its prompt and its max tokens, see `cap_reply`) until it is saved, in the
transaction that adds its real usage to the ledger. A reply's max tokens are
capped to what the tightest token limit leaves, so replies started at once
can't together spend more than the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from chat.models import DailyUsage, Message, UserLimits

MINUTE = timedelta(seconds=60)


@dataclass(frozen=True)
class Limits:
    """A person's limits in force; 0 means unlimited."""

    tokens_per_day: int
    tokens_per_month: int
    replies_per_minute: int
    concurrent_generations: int


def site_defaults() -> Limits:
    return Limits(
        tokens_per_day=settings.GLMWEB_LIMIT_TOKENS_PER_DAY,
        tokens_per_month=settings.GLMWEB_LIMIT_TOKENS_PER_MONTH,
        replies_per_minute=settings.GLMWEB_LIMIT_REPLIES_PER_MINUTE,
        concurrent_generations=settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS,
    )


def effective(row: UserLimits | None) -> Limits:
    """The row's own values where set, the site's defaults elsewhere."""
    defaults = site_defaults()
    if row is None:
        return defaults

    def pick(name: str) -> int:
        value: int | None = getattr(row, name)
        default: int = getattr(defaults, name)
        return default if value is None else value

    return Limits(
        tokens_per_day=pick("tokens_per_day"),
        tokens_per_month=pick("tokens_per_month"),
        replies_per_minute=pick("replies_per_minute"),
        concurrent_generations=pick("concurrent_generations"),
    )


def limits_for(user_id: int) -> Limits:
    return effective(UserLimits.objects.filter(user_id=user_id).first())


# --- Periods --------------------------------------------------------------------


def today() -> date:
    return timezone.localdate()


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def next_month_start(day: date) -> datetime:
    first = (month_start(day) + timedelta(days=32)).replace(day=1)
    return timezone.make_aware(datetime.combine(first, time.min))


def format_moment(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


# --- What a person has used -------------------------------------------------------


def tokens_used(user_id: int, day: date) -> tuple[int, int]:
    """Tokens on `day` and in its month so far, from the ledger."""
    used = DailyUsage.objects.filter(user_id=user_id, day__gte=month_start(day)).aggregate(
        day=Sum("total_tokens", filter=Q(day=day), default=0),
        month=Sum("total_tokens", default=0),
    )
    return used["day"], used["month"]


def recent_replies(user_id: int, now: datetime) -> tuple[int, datetime | None]:
    """Replies started in the last minute, and when the oldest of them started."""
    recent = Message.objects.filter(
        conversation__owner_id=user_id,
        role=Message.Role.ASSISTANT,
        created_at__gt=now - MINUTE,
    ).aggregate(count=Count("id"), oldest=Min("created_at"))
    return recent["count"], recent["oldest"]


def in_flight(user_id: int, now: datetime) -> tuple[int, int]:
    """Replies streaming now, and the tokens they hold against the token limits.

    One silent past the stale limit is dead, not generating: it holds nothing.
    """
    stale_before = now - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    streaming = Message.objects.filter(
        conversation__owner_id=user_id,
        status=Message.Status.STREAMING,
        updated_at__gte=stale_before,
    ).aggregate(count=Count("id"), reserved=Sum("reserved_tokens", default=0))
    return streaming["count"], streaming["reserved"]


# --- The check --------------------------------------------------------------------


def locked_row(user_id: int) -> UserLimits | None:
    """The person's limits row, locked until the transaction ends (on PostgreSQL).

    Raw SQL: it runs before every turn starts, and the ORM spends ten times the
    query's own cost building it.
    """
    table = UserLimits._meta
    fields = table.concrete_fields  # all integers: no conversion from the database
    columns = ", ".join(str(field.column) for field in fields)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT {columns} FROM {table.db_table} WHERE {table.pk.column} = %s{lock}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        found = cursor.fetchone()
    if found is None:
        return None
    return UserLimits.from_db(connection.alias, [field.attname for field in fields], found)


class LimitReached(Exception):
    """A reply can't start now; the message says which limit and when it frees up."""


@dataclass(frozen=True)
class TokenWindow:
    """One token limit as it stands: spent by saved replies, held by streaming ones."""

    period: str  # "daily" or "monthly"
    limit: int
    spent: int
    held: int
    resets: datetime

    @property
    def left(self) -> int:
        return self.limit - self.spent - self.held

    def name(self) -> str:
        return f"{self.period} limit of {self.limit:,} tokens"

    def standing(self) -> str:
        period = "today" if self.period == "daily" else "this month"
        held = f", {self.held:,} held for replies until they finish" if self.held else ""
        return f"{self.spent:,} used {period}{held}. It resets at {format_moment(self.resets)}"


def check_turn(user_id: int) -> TokenWindow | None:
    """Refuse (LimitReached) a reply this person can't start now.

    Returns the tightest token limit, for `cap_reply`, or None when no token
    limit applies. Call inside the turn's transaction, and reserve the reply's
    tokens in it: the person's limits row stays locked until it ends.
    """
    row = locked_row(user_id)
    if row is None:
        if site_defaults() == Limits(0, 0, 0, 0):
            return None  # no limits at all: nothing to count, nothing to lock
        # The row is the lock: a racing first send waits on the insert, then on the row.
        row, _ = UserLimits.objects.select_for_update().get_or_create(user_id=user_id)
    limits = effective(row)
    now = timezone.now()
    tokens_limited = bool(limits.tokens_per_day or limits.tokens_per_month)
    running, held = 0, 0
    if limits.concurrent_generations or tokens_limited:
        running, held = in_flight(user_id, now)
    if limits.concurrent_generations and running >= limits.concurrent_generations:
        raise LimitReached(
            f"You have reached your limit of {limits.concurrent_generations} "
            f"simultaneous {_replies(limits.concurrent_generations)}: {running} "
            "generating now. It frees up as soon as one of them finishes or you stop it."
        )
    if limits.replies_per_minute:
        _refuse_over_rate(user_id, limits.replies_per_minute, now)
    if not tokens_limited:
        return None
    window = _tightest_window(user_id, limits, now, held)
    if window.left <= 0:
        raise LimitReached(f"You have used your {window.name()} ({window.standing()}).")
    return window


def cap_reply(
    window: TokenWindow | None, prompt_tokens: int, max_tokens: int | None
) -> tuple[int | None, int]:
    """A reply's max tokens within what its token limit leaves, and the tokens to hold for it.

    Refuses (LimitReached) a message that leaves no room for a reply.
    """
    if window is None:
        return max_tokens, 0
    room = window.left - prompt_tokens
    if room < 1:
        raise LimitReached(
            f"This message needs about {prompt_tokens:,} tokens and your {window.name()} "
            f"leaves {max(window.left, 0):,} ({window.standing()})."
        )
    capped = room if max_tokens is None else min(max_tokens, room)
    return capped, prompt_tokens + capped


def _refuse_over_rate(user_id: int, per_minute: int, now: datetime) -> None:
    count, oldest = recent_replies(user_id, now)
    if count >= per_minute and oldest is not None:
        reset = oldest + MINUTE
        wait = max(1, round((reset - now).total_seconds()))
        raise LimitReached(
            f"You have reached your limit of {per_minute} {_replies(per_minute)} per minute. "
            f"It resets at {timezone.localtime(reset):%H:%M:%S %Z} (in {wait} s)."
        )


def _tightest_window(user_id: int, limits: Limits, now: datetime, held: int) -> TokenWindow:
    day = timezone.localdate(now)
    used_today, used_month = tokens_used(user_id, day)
    windows = []
    if limits.tokens_per_day:
        windows.append(
            TokenWindow("daily", limits.tokens_per_day, used_today, held, next_midnight(day))
        )
    if limits.tokens_per_month:
        windows.append(
            TokenWindow("monthly", limits.tokens_per_month, used_month, held, next_month_start(day))
        )
    return min(windows, key=lambda window: window.left)


def _replies(count: int) -> str:
    return "reply" if count == 1 else "replies"


# --- For the usage pages ------------------------------------------------------------


@dataclass(frozen=True)
class LimitStatus:
    name: str
    limit: int  # 0: unlimited
    used: int
    resets: str

    @property
    def unlimited(self) -> bool:
        return self.limit == 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.limit)) if self.limit else 0


def status_for(user_id: int) -> list[LimitStatus]:
    """Each limit with its use now, for a person's usage page or the admin's."""
    limits = limits_for(user_id)
    now = timezone.now()
    day = timezone.localdate(now)
    used_today, used_month = tokens_used(user_id, day)
    per_minute, _ = recent_replies(user_id, now)
    return [
        LimitStatus(
            "Tokens today", limits.tokens_per_day, used_today, format_moment(next_midnight(day))
        ),
        LimitStatus(
            "Tokens this month",
            limits.tokens_per_month,
            used_month,
            format_moment(next_month_start(day)),
        ),
        LimitStatus(
            "Replies per minute", limits.replies_per_minute, per_minute, "60 s after each reply"
        ),
        LimitStatus(
            "Simultaneous replies",
            limits.concurrent_generations,
            in_flight(user_id, now)[0],
            "as each reply finishes",
        ),
    ]
