"""Tokens and cost over a window of days, by person, group, model or day: the admin's
usage report and its CSV, read from the ledger (chat.usage.ledger) only.

A person in several groups counts in each of them, so the groups' lines may add
up to more than the total; the total line is everyone's, counted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import F, QuerySet, Sum

from chat.models import DailyUsage
from chat.usage import limits

GROUPINGS = {"person": "Person", "group": "Group", "model": "Model", "day": "Day"}
WINDOWS = {
    "month": "This month",
    "last_month": "Last month",
    "30d": "Last 30 days",
    "7d": "Last 7 days",
}
NO_GROUP = "(in no group)"


@dataclass(frozen=True)
class Span:
    """A window of days, both ends included."""

    key: str
    first: date
    last: date

    @property
    def label(self) -> str:
        return WINDOWS[self.key]

    @classmethod
    def of(cls, key: str, today: date | None = None) -> Span:
        today = today or limits.today()
        key = key if key in WINDOWS else "month"
        if key == "month":
            return cls(key, today.replace(day=1), today)
        if key == "last_month":
            last = today.replace(day=1) - timedelta(days=1)
            return cls(key, last.replace(day=1), last)
        days = 30 if key == "30d" else 7
        return cls(key, today - timedelta(days=days - 1), today)


@dataclass(frozen=True)
class Line:
    """One line of a report: a person, group, model or day, and what it spent."""

    key: str
    prompt: int
    completion: int
    total: int
    replies: int
    cost: Decimal
    # The person's id, for a link to their page (lines by person only).
    user_id: int | None = None

    @property
    def cents(self) -> Decimal:
        """The cost to the cent, as the page shows it."""
        return self.cost.quantize(limits.CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Report:
    grouping: str
    span: Span
    lines: list[Line]
    total: Line


SUMS: dict[str, Any] = {
    "prompt": Sum("prompt_tokens", default=0),
    "completion": Sum("completion_tokens", default=0),
    "total": Sum("total_tokens", default=0),
    "replies": Sum("replies", default=0),
    "cost": Sum("cost", default=Decimal(0)),
}


def report(grouping: str, span: Span, group_id: int | None = None) -> Report:
    """The window's figures by ``grouping``; with ``group_id``, only that group's members."""
    rows = DailyUsage.objects.filter(day__gte=span.first, day__lte=span.last)
    if group_id is not None:
        rows = rows.filter(user__groups=group_id)
    lines = _LINES[grouping if grouping in GROUPINGS else "person"](rows)
    total = _line("Total", rows.aggregate(**SUMS))
    return Report(grouping, span, lines, total)


def _line(key: str, values: Mapping[str, Any], user_id: int | None = None) -> Line:
    return Line(
        key=key,
        prompt=values["prompt"],
        completion=values["completion"],
        total=values["total"],
        replies=values["replies"],
        cost=Decimal(values["cost"]),
        user_id=user_id,
    )


def _by_person(rows: QuerySet[DailyUsage]) -> list[Line]:
    found = rows.values("user_id", name=F("user__username")).annotate(**SUMS).order_by()
    lines = [_line(row["name"], row, row["user_id"]) for row in found]
    return sorted(lines, key=lambda line: (-line.cost, -line.total, line.key))


def _by_group(rows: QuerySet[DailyUsage]) -> list[Line]:
    grouped = rows.values(name=F("user__groups__name")).annotate(**SUMS).order_by()
    lines = [_line(row["name"] or NO_GROUP, row) for row in grouped]
    return sorted(lines, key=lambda line: (-line.cost, -line.total, line.key))


def _by_model(rows: QuerySet[DailyUsage]) -> list[Line]:
    found = rows.values("model").annotate(**SUMS).order_by()
    lines = [_line(row["model"], row) for row in found]
    return sorted(lines, key=lambda line: (-line.cost, -line.total, line.key))


def _by_day(rows: QuerySet[DailyUsage]) -> list[Line]:
    found = rows.values("day").annotate(**SUMS).order_by("day")
    return [_line(row["day"].isoformat(), row) for row in found]


_LINES = {"person": _by_person, "group": _by_group, "model": _by_model, "day": _by_day}
