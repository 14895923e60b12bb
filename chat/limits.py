"""Per-person limits: what applies to whom, and the check before a turn starts.

`refusal_for` runs inside the transaction that starts a turn (chat.generation
`begin_send` / `begin_regenerate`), before anything goes upstream. It first
locks the person's `UserLimits` row, so on PostgreSQL two sends racing from two
tabs or two workers are counted one after the other: the second sees the first
one's reply, already streaming and counted. (SQLite's IMMEDIATE transactions
serialise all writers anyway.)

Tokens come from the usage ledger (chat.usage), which a reply reaches when it
is saved: a reply still streaming counts towards the concurrency and
per-minute limits, not yet towards the token limits.
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
        value = getattr(row, name)
        return getattr(defaults, name) if value is None else value

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


def generating(user_id: int, now: datetime) -> int:
    """Replies streaming now (one silent past the stale limit is dead, not generating)."""
    stale_before = now - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    return Message.objects.filter(
        conversation__owner_id=user_id,
        status=Message.Status.STREAMING,
        updated_at__gte=stale_before,
    ).count()


# --- The check --------------------------------------------------------------------


def locked_row(user_id: int) -> UserLimits | None:
    """The person's limits row, locked until the transaction ends (on PostgreSQL).

    Raw SQL: it runs before every turn starts, and the ORM spends ten times the
    query's own cost building it.
    """
    table = UserLimits._meta
    fields = table.concrete_fields  # all integers: no conversion from the database
    columns = ", ".join(field.column for field in fields)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT {columns} FROM {table.db_table} WHERE {table.pk.column} = %s{lock}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        found = cursor.fetchone()
    if found is None:
        return None
    return UserLimits.from_db(connection.alias, [field.attname for field in fields], found)


def refusal_for(user_id: int) -> str | None:
    """Why this person can't start a reply now, or None. Call inside the turn's transaction."""
    row = locked_row(user_id)
    if row is None:
        if site_defaults() == Limits(0, 0, 0, 0):
            return None  # no limits at all: nothing to count, nothing to lock
        # The row is the lock: a racing first send waits on the insert, then on the row.
        row, _ = UserLimits.objects.select_for_update().get_or_create(user_id=user_id)
    limits = effective(row)
    now = timezone.now()
    if limits.concurrent_generations:
        running = generating(user_id, now)
        if running >= limits.concurrent_generations:
            return (
                f"You have reached your limit of {limits.concurrent_generations} "
                f"simultaneous {_replies(limits.concurrent_generations)}: {running} "
                "generating now. It frees up as soon as one of them finishes or you stop it."
            )
    if limits.replies_per_minute:
        count, oldest = recent_replies(user_id, now)
        if count >= limits.replies_per_minute and oldest is not None:
            reset = oldest + MINUTE
            wait = max(1, round((reset - now).total_seconds()))
            return (
                f"You have reached your limit of {limits.replies_per_minute} "
                f"{_replies(limits.replies_per_minute)} per minute. It resets at "
                f"{timezone.localtime(reset):%H:%M:%S %Z} (in {wait} s)."
            )
    if limits.tokens_per_day or limits.tokens_per_month:
        day = timezone.localdate(now)
        used_today, used_month = tokens_used(user_id, day)
        if limits.tokens_per_day and used_today >= limits.tokens_per_day:
            return (
                f"You have used your daily limit of {limits.tokens_per_day:,} tokens "
                f"({used_today:,} today). It resets at {format_moment(next_midnight(day))}."
            )
        if limits.tokens_per_month and used_month >= limits.tokens_per_month:
            return (
                f"You have used your monthly limit of {limits.tokens_per_month:,} tokens "
                f"({used_month:,} this month). It resets at "
                f"{format_moment(next_month_start(day))}."
            )
    return None


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
            generating(user_id, now),
            "as each reply finishes",
        ),
    ]
