"""Token usage: the ledger a saved reply (or a generated title) adds to.

`DailyUsage` holds one row per person, day and model. `record_reply` adds a
reply's tokens to it in the transaction that saves the reply, so the ledger's
sums are exactly the sums of the saved replies' figures: the upstream's own
`usage` where it sent one, our estimate (counted apart) where it didn't. Pages
read the ledger (a few hundred thousand rows at most) instead of aggregating
every message: bench/admin_pages.py has the numbers that decided it. What they
read from it is in chat.usage.figures and chat.usage.reports.

Each row also keeps what its tokens cost: each reply's tokens at its model's
prices (chat.models.ChatModel) in force when the reply is saved, computed in the
statement that adds them, so a later price change leaves past costs alone.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat.models import ChatModel, Conversation, DailyUsage, Message

# A row's cost in SQL: its tokens at the model's prices per million (none: free).
# 1000000.0, not 1000000: SQLite would divide integers.
COST_SQL = (
    "(({prompt}) * COALESCE(p.input_price_per_million, 0)"
    " + ({completion}) * COALESCE(p.output_price_per_million, 0)) / 1000000.0"
)


def record_reply(reply_id: uuid.UUID) -> None:
    """Add a just-saved reply's tokens to its owner's ledger row for today. Once per reply.

    One statement: the reply's figures are read and added in the database, so
    two replies finishing at once on two workers both count (no read-modify-write).
    A reply counts on the day it was saved, as `ledger_from_messages` assumes.
    """
    message, conversation = Message._meta, Conversation._meta
    ledger, prices = DailyUsage._meta.db_table, ChatModel._meta.db_table
    cost = COST_SQL.format(
        prompt="COALESCE(m.prompt_tokens, 0)", completion="COALESCE(m.completion_tokens, 0)"
    )
    sql = f"""
        INSERT INTO {ledger} (user_id, day, model, prompt_tokens, completion_tokens,
            total_tokens, replies, estimated_total_tokens, estimated_replies, cost)
        SELECT c.owner_id, %s, m.model, COALESCE(m.prompt_tokens, 0),
            COALESCE(m.completion_tokens, 0), m.total_tokens, 1,
            CASE WHEN m.usage_estimated THEN m.total_tokens ELSE 0 END,
            CASE WHEN m.usage_estimated THEN 1 ELSE 0 END,
            {cost}
        FROM {message.db_table} m JOIN {conversation.db_table} c ON c.id = m.conversation_id
            LEFT JOIN {prices} p ON p.name = m.model
        WHERE m.id = %s AND m.total_tokens IS NOT NULL
        ON CONFLICT (user_id, day, model) DO UPDATE SET
            prompt_tokens = {ledger}.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = {ledger}.completion_tokens + excluded.completion_tokens,
            total_tokens = {ledger}.total_tokens + excluded.total_tokens,
            replies = {ledger}.replies + 1,
            estimated_total_tokens = {ledger}.estimated_total_tokens
                + excluded.estimated_total_tokens,
            estimated_replies = {ledger}.estimated_replies + excluded.estimated_replies,
            cost = {ledger}.cost + excluded.cost
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
    prices = ChatModel._meta.db_table
    cost = COST_SQL.format(prompt="%s", completion="%s")
    sql = f"""
        INSERT INTO {ledger} (user_id, day, model, prompt_tokens, completion_tokens,
            total_tokens, replies, estimated_total_tokens, estimated_replies, cost)
        SELECT c.owner_id, %s, c.model, %s, %s, %s, 0, 0, 0, {cost}
        FROM {conversation.db_table} c LEFT JOIN {prices} p ON p.name = c.model
        WHERE c.id = %s
        ON CONFLICT (user_id, day, model) DO UPDATE SET
            prompt_tokens = {ledger}.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = {ledger}.completion_tokens + excluded.completion_tokens,
            total_tokens = {ledger}.total_tokens + excluded.total_tokens,
            cost = {ledger}.cost + excluded.cost
    """
    day = connection.ops.adapt_datefield_value(timezone.localdate())
    key = conversation.pk.get_db_prep_value(conversation_id, connection)
    total = prompt_tokens + completion_tokens
    with connection.cursor() as cursor:
        tokens = [prompt_tokens, completion_tokens, total, prompt_tokens, completion_tokens]
        cursor.execute(sql, [day, *tokens, key])


def ledger_from_titles() -> QuerySet[Any, Any]:
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


def ledger_from_messages(messages: QuerySet[Message] | None = None) -> QuerySet[Any, Any]:
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
    """Replace the ledger by what the saved messages add up to (deleted ones are lost).

    Costs are counted again at today's prices.
    """
    prices = {row.name: row for row in ChatModel.objects.all()}
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
        for line in rows.values():
            price = prices.get(line.model)
            if price is not None:
                line.cost = price.cost(line.prompt_tokens, line.completion_tokens)
        DailyUsage.objects.bulk_create(rows.values(), batch_size=batch_size)
    return len(rows)
