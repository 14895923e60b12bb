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

The monthly budget works the same way in money: the month's cost so far (the
ledger's, at the prices in force when each reply was saved) plus what the
streaming replies hold (their reserved tokens at their model's higher price)
must leave room, and the reply's max tokens are capped to what is left at its
model's output price. Replies started at once overspend the budget by at most
what the estimate of one prompt misses. Which limits apply to whom is in
chat.usage.policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from chat.models import DailyUsage, GroupPolicy, Message, UserLimits
from chat.params import MILLION, Catalog, Model
from chat.usage.policy import Limits, effective, limits_for, policies_of

MINUTE = timedelta(seconds=60)
CENT = Decimal("0.01")


def money(amount: Decimal) -> str:
    """An amount as the pages and messages show it: to the cent, with the currency."""
    return f"{amount.quantize(CENT, ROUND_HALF_UP):,} {settings.GLMWEB_CURRENCY}"


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
    used = spent(user_id, day)
    return used[0], used[1]


def spent(user_id: int, day: date) -> tuple[int, int, Decimal]:
    """Tokens on `day` and in its month so far, and the month's cost, from the ledger."""
    used = DailyUsage.objects.filter(user_id=user_id, day__gte=month_start(day)).aggregate(
        day=Sum("total_tokens", filter=Q(day=day), default=0),
        month=Sum("total_tokens", default=0),
        cost=Sum("cost", default=Decimal(0)),
    )
    return used["day"], used["month"], Decimal(used["cost"])


def recent_replies(user_id: int, now: datetime) -> tuple[int, datetime | None]:
    """Replies started in the last minute, and when the oldest of them started."""
    recent = Message.objects.filter(
        conversation__owner_id=user_id,
        role=Message.Role.ASSISTANT,
        created_at__gt=now - MINUTE,
    ).aggregate(count=Count("id"), oldest=Min("created_at"))
    return recent["count"], recent["oldest"]


def in_flight(user_id: int, now: datetime) -> tuple[int, int]:
    """Replies streaming now, and the tokens they hold against the token limits."""
    by_model = in_flight_by_model(user_id, now)
    return sum(count for count, _ in by_model.values()), sum(r for _, r in by_model.values())


def in_flight_by_model(user_id: int, now: datetime) -> dict[str, tuple[int, int]]:
    """Replies streaming now and the tokens they hold, by model.

    One silent past the stale limit is dead, not generating: it holds nothing.
    """
    stale_before = now - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    streaming = (
        Message.objects.filter(
            conversation__owner_id=user_id,
            status=Message.Status.STREAMING,
            updated_at__gte=stale_before,
        )
        .values("model")
        .annotate(count=Count("id"), reserved=Sum("reserved_tokens", default=0))
        .order_by()
    )
    return {row["model"]: (row["count"], row["reserved"]) for row in streaming}


def held_cost(by_model: dict[str, tuple[int, int]], catalog: Catalog) -> Decimal:
    """The most the streaming replies can still cost: every held token at the higher price."""
    total = Decimal(0)
    for name, (_, reserved) in by_model.items():
        model = catalog.named(name)
        if model is not None:
            total += reserved * max(model.input_price, model.output_price) / MILLION
    return total


# --- The check --------------------------------------------------------------------


def locked_row(user_id: int) -> UserLimits | None:
    """The person's limits row, locked until the transaction ends (on PostgreSQL).

    Raw SQL: it runs before every turn starts, and the ORM spends ten times the
    query's own cost building it.
    """
    table = UserLimits._meta
    fields = table.concrete_fields
    columns = ", ".join(str(field.column) for field in fields)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT {columns} FROM {table.db_table} WHERE {table.pk.column} = %s{lock}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        found = cursor.fetchone()
    if found is None:
        return None
    row = UserLimits.from_db(connection.alias, [field.attname for field in fields], found)
    if row.monthly_budget is not None:  # SQLite answers a float
        row.monthly_budget = Decimal(str(row.monthly_budget)).quantize(CENT)
    return row


class LimitReached(Exception):
    """A reply can't start now; the message says which limit and when it frees up.

    ``code`` is the protocol's error code: limit_reached, or budget_exhausted.
    """

    def __init__(self, message: str, code: str = "limit_reached") -> None:
        super().__init__(message)
        self.code = code


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


@dataclass(frozen=True)
class Budget:
    """The monthly budget as it stands: spent by saved replies, held by streaming ones."""

    limit: Decimal
    spent: Decimal
    held: Decimal
    resets: datetime

    @property
    def left(self) -> Decimal:
        return self.limit - self.spent - self.held

    def name(self) -> str:
        return f"monthly budget of {money(self.limit)}"

    def standing(self) -> str:
        held = f", {money(self.held)} held for replies until they finish" if self.held else ""
        return (
            f"{money(self.spent)} spent this month{held}. It resets at {format_moment(self.resets)}"
        )

    def exhausted(self, detail: str = "") -> LimitReached:
        message = detail or f"You have used your {self.name()} ({self.standing()})."
        return LimitReached(message, code="budget_exhausted")


@dataclass(frozen=True)
class Room:
    """What a person's limits leave for the reply about to start (None: no such limit)."""

    window: TokenWindow | None = None
    budget: Budget | None = None


def check_turn(user_id: int, catalog: Catalog, policies: list[GroupPolicy] | None = None) -> Room:
    """Refuse (LimitReached) a reply this person can't start now.

    Returns the tightest token limit and the budget, for `cap_reply`. Call
    inside the turn's transaction, and reserve the reply's tokens in it: the
    person's limits row stays locked until it ends. ``catalog`` prices the
    replies still streaming; ``policies`` are the person's groups' (read here if None).
    """
    row = locked_row(user_id)
    if policies is None:
        policies = policies_of(user_id)
    if row is None:
        if effective(None, policies).none():
            return Room()  # no limits at all: nothing to count, nothing to lock
        # The row is the lock: a racing first send waits on the insert, then on the row.
        row, _ = UserLimits.objects.select_for_update().get_or_create(user_id=user_id)
    limits = effective(row, policies)
    now = timezone.now()
    tokens_limited = bool(limits.tokens_per_day or limits.tokens_per_month)
    counted = limits.concurrent_generations or tokens_limited or limits.monthly_budget
    streaming = in_flight_by_model(user_id, now) if counted else {}
    running = sum(count for count, _ in streaming.values())
    held = sum(reserved for _, reserved in streaming.values())
    if limits.concurrent_generations and running >= limits.concurrent_generations:
        raise LimitReached(
            f"You have reached your limit of {limits.concurrent_generations} "
            f"simultaneous {_replies(limits.concurrent_generations)}: {running} "
            "generating now. It frees up as soon as one of them finishes or you stop it."
        )
    if limits.replies_per_minute:
        _refuse_over_rate(user_id, limits.replies_per_minute, now)
    if not (tokens_limited or limits.monthly_budget):
        return Room()
    day = timezone.localdate(now)
    used_today, used_month, cost_month = spent(user_id, day)
    window = budget = None
    if tokens_limited:
        window = _tightest_window(limits, (used_today, used_month), day, held)
        if window.left <= 0:
            raise LimitReached(f"You have used your {window.name()} ({window.standing()}).")
    if limits.monthly_budget:
        held_money = held_cost(streaming, catalog)
        budget = Budget(limits.monthly_budget, cost_month, held_money, next_month_start(day))
        if budget.left <= 0:
            raise budget.exhausted()
    return Room(window, budget)


def cap_reply(
    room: Room | None, prompt_tokens: int, max_tokens: int | None, model: Model | None
) -> tuple[int | None, int]:
    """A reply's max tokens within what its token limit and budget leave, and the tokens
    to hold for it.

    Refuses (LimitReached) a message that leaves no room for a reply.
    """
    if room is None or (room.window is None and room.budget is None):
        return max_tokens, 0
    capped = max_tokens
    if room.window is not None:
        capped = _within_window(room.window, prompt_tokens, capped)
    if room.budget is not None and model is not None:
        capped = _within_budget(room.budget, prompt_tokens, capped, model)
    return capped, prompt_tokens + (capped or 0)


def _within_window(window: TokenWindow, prompt_tokens: int, max_tokens: int | None) -> int:
    room = window.left - prompt_tokens
    if room < 1:
        raise LimitReached(
            f"This message needs about {prompt_tokens:,} tokens and your {window.name()} "
            f"leaves {max(window.left, 0):,} ({window.standing()})."
        )
    return room if max_tokens is None else min(max_tokens, room)


def _within_budget(
    budget: Budget, prompt_tokens: int, max_tokens: int | None, model: Model
) -> int | None:
    prompt_cost = prompt_tokens * model.input_price / MILLION
    left = budget.left - prompt_cost
    if not model.output_price:
        tokens = None if left > 0 else 0
    else:
        tokens = int((left * MILLION / model.output_price).to_integral_value(ROUND_FLOOR))
    if tokens is not None and tokens < 1:
        raise budget.exhausted(
            f"This message to {model.name} needs about {money(prompt_cost)} and your "
            f"{budget.name()} leaves {money(max(budget.left, Decimal(0)))} "
            f"({budget.standing()})."
        )
    if tokens is None:
        return max_tokens
    return tokens if max_tokens is None else min(max_tokens, tokens)


def _refuse_over_rate(user_id: int, per_minute: int, now: datetime) -> None:
    count, oldest = recent_replies(user_id, now)
    if count >= per_minute and oldest is not None:
        reset = oldest + MINUTE
        wait = max(1, round((reset - now).total_seconds()))
        raise LimitReached(
            f"You have reached your limit of {per_minute} {_replies(per_minute)} per minute. "
            f"It resets at {timezone.localtime(reset):%H:%M:%S %Z} (in {wait} s)."
        )


def _tightest_window(limits: Limits, used: tuple[int, int], day: date, held: int) -> TokenWindow:
    used_today, used_month = used
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
    limit: int | Decimal  # 0: unlimited
    used: int | Decimal
    resets: str
    is_money: bool = False

    @property
    def unlimited(self) -> bool:
        return self.limit == 0

    @property
    def remaining(self) -> int | Decimal:
        return max(0, self.limit - self.used)

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.limit)) if self.limit else 0

    def shown(self, amount: int | Decimal) -> str:
        return money(Decimal(amount)) if self.is_money else f"{amount:,}"

    @property
    def used_text(self) -> str:
        return self.shown(self.used)

    @property
    def limit_text(self) -> str:
        return self.shown(self.limit)

    @property
    def remaining_text(self) -> str:
        return self.shown(self.remaining)


def status_for(user_id: int) -> list[LimitStatus]:
    """Each limit with its use now, for a person's usage page or the admin's."""
    limits = limits_for(user_id)
    now = timezone.now()
    day = timezone.localdate(now)
    used_today, used_month, cost_month = spent(user_id, day)
    per_minute, _ = recent_replies(user_id, now)
    month_end = format_moment(next_month_start(day))
    return [
        LimitStatus(
            "Tokens today", limits.tokens_per_day, used_today, format_moment(next_midnight(day))
        ),
        LimitStatus("Tokens this month", limits.tokens_per_month, used_month, month_end),
        LimitStatus("Budget this month", limits.monthly_budget, cost_month, month_end, True),
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
