"""The admin's landing page in figures: today's use, what streams now, what failed lately.

Each figure is one small query over an index (noted beside it), so the page stays
quick with a million messages: the ledger for today's tokens, the partial index of
streaming replies, and replies by role and time for the last hour's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from chat.models import ChatModel, DailyUsage, Message, SignupApproval
from chat.usage.limits import money

ERROR_WINDOW = timedelta(hours=1)
TOP_PEOPLE = 5


@dataclass(frozen=True)
class PersonToday:
    user_id: int
    username: str
    total_tokens: int
    replies: int


@dataclass(frozen=True)
class ErrorCount:
    code: str
    count: int


@dataclass(frozen=True)
class Dashboard:
    day: date
    tokens_today: int
    cost_today: str | None  # None while no model has a price
    replies_today: int
    people_today: int
    streaming_now: int
    errors_last_hour: int
    error_codes: list[ErrorCount] = field(default_factory=list)
    top_people: list[PersonToday] = field(default_factory=list)
    signups_waiting: int = 0


def dashboard(now: datetime, today: date) -> Dashboard:
    """The figures of the admin's landing page at `now` (`today` is its local date)."""
    # The ledger's unique (user, day, model) index: today's rows only.
    todays = DailyUsage.objects.filter(day=today)
    totals = todays.aggregate(
        tokens=Sum("total_tokens", default=0),
        replies=Sum("replies", default=0),
        cost=Sum("cost", default=Decimal(0)),
        people=Count("user", distinct=True),
    )
    errors = _errors_since(now - ERROR_WINDOW)
    return Dashboard(
        day=today,
        tokens_today=totals["tokens"],
        cost_today=money(totals["cost"]) if _priced() else None,
        replies_today=totals["replies"],
        people_today=totals["people"],
        streaming_now=_streaming_now(now),
        errors_last_hour=sum(error.count for error in errors),
        error_codes=errors,
        top_people=_top_people(todays),
        signups_waiting=SignupApproval.objects.filter(approved_at__isnull=True).count(),
    )


def _priced() -> bool:
    return ChatModel.objects.filter(
        Q(input_price_per_million__isnull=False) | Q(output_price_per_million__isnull=False)
    ).exists()


def _streaming_now(now: datetime) -> int:
    # The partial index msg_streaming holds only streaming replies; a row the
    # stale sweep would give up on isn't streaming any more.
    fresh_after = now - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    return Message.objects.filter(
        status=Message.Status.STREAMING, updated_at__gte=fresh_after
    ).count()


def _errors_since(since: datetime) -> list[ErrorCount]:
    # msg_role_created: replies of the last hour, then their status.
    rows = (
        Message.objects.filter(
            role=Message.Role.ASSISTANT, created_at__gte=since, status=Message.Status.ERROR
        )
        .values("error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "error_code")
    )
    return [ErrorCount(row["error_code"] or "unknown", row["count"]) for row in rows]


def _top_people(todays: QuerySet[DailyUsage]) -> list[PersonToday]:
    people = (
        todays.values("user_id", "user__username")
        .annotate(tokens=Sum("total_tokens"), replies=Sum("replies"))
        .order_by("-tokens", "user__username")[:TOP_PEOPLE]
    )
    return [
        PersonToday(p["user_id"], p["user__username"], p["tokens"], p["replies"]) for p in people
    ]
