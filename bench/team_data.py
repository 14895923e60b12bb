"""A team's data at scale, built in PostgreSQL itself (generate_series), for
bench/admin_pages.py: people in one group, their conversations and messages, and the
usage ledger computed from those messages at the models' prices.

Python never sees a row: 1M messages go in with a handful of INSERT ... SELECT
statements in a few minutes. Ids are md5 hashes of each row's number, so a message's
parent is the previous message's hash. Columns the statements don't name get their
field's default, from the model itself.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, models, transaction

from chat.models import ChatModel, Conversation, DailyUsage, Message

PRICES = {
    "glm-5": (Decimal("0.60"), Decimal("2.20")),
    "glm-4.6": (Decimal("0.50"), Decimal("1.75")),
    "glm-4.5-air": (Decimal("0.20"), Decimal("1.10")),
}
MESSAGES_PER_CONVERSATION = 20
DAYS = 60


def insert_select(
    model: type[models.Model], given: dict[str, str], source: str, params: list[Any]
) -> int:
    """INSERT INTO model's table (every column) SELECT the `given` SQL per column, the
    field's default for the rest, FROM `source`; how many rows went in."""
    columns, expressions, defaults = [], [], []
    for field in model._meta.concrete_fields:
        if isinstance(field, models.AutoField) and field.column not in given:
            continue  # the database numbers it
        columns.append(field.column)
        if field.column in given:
            expressions.append(given[field.column])
        else:
            expressions.append("%s")
            value = None if field.null else field.get_default()
            defaults.append(field.get_db_prep_save(value, connection))
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM {source}"
    )
    # The given expressions carry no params: the defaults come first, then the FROM's.
    assert all("%s" not in expression for expression in given.values())
    with connection.cursor() as cursor:
        cursor.execute(sql, [*defaults, *params])
        return cursor.rowcount


def build(people: int, messages: int, group_name: str, log: Any = print) -> Group:
    """The group, its people, their conversations and messages, and the ledger."""
    assert connection.vendor == "postgresql", "the team builder uses PostgreSQL's SQL"
    started = time.monotonic()
    conversations = messages // MESSAGES_PER_CONVERSATION
    User = get_user_model()
    prefix = f"{group_name}-"
    with transaction.atomic():
        for name, (given_in, given_out) in PRICES.items():
            ChatModel.objects.update_or_create(
                name=name,
                defaults={
                    "input_price_per_million": given_in,
                    "output_price_per_million": given_out,
                },
            )
        group, _ = Group.objects.get_or_create(name=group_name)
        insert_select(
            User,
            {
                "username": f"'{prefix}' || lpad(i::text, 5, '0')",
                "password": "'!'",
                "date_joined": "now()",
            },
            "generate_series(1, %s) i",
            [people],
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE team AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n "
                f"FROM {User._meta.db_table} WHERE username LIKE %s",
                [f"{prefix}%"],
            )
            cursor.execute(
                f"INSERT INTO {User.groups.through._meta.db_table} (user_id, group_id) "
                "SELECT id, %s FROM team",
                [group.pk],
            )
        log(f"{people:,} people in {group_name} ({time.monotonic() - started:.0f} s)")
        _conversations(conversations, people, group_name)
        log(f"{conversations:,} conversations ({time.monotonic() - started:.0f} s)")
        _messages(conversations, group_name)
        written = conversations * MESSAGES_PER_CONVERSATION
        log(f"{written:,} messages ({time.monotonic() - started:.0f} s)")
        rows = _ledger(group)
        log(f"{rows:,} ledger rows ({time.monotonic() - started:.0f} s)")
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE team")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return group


def _key(kind: str, group_name: str, number: str) -> str:
    return f"md5('{group_name}-{kind}-' || {number})::uuid"


def _moment(conversation: str) -> str:
    """When conversation number `conversation` started: spread over the last DAYS days
    (hashtext: a person's conversations, every 1,000th number, on days all over)."""
    return (
        f"now() - (mod(abs(hashtext('d' || {conversation})), {DAYS}) || ' days')::interval"
        f" - (mod(abs(hashtext('t' || {conversation})), 600) || ' minutes')::interval"
    )


def _model(conversation: str) -> str:
    names = ", ".join(f"'{name}'" for name in PRICES)
    return f"(ARRAY[{names}])[1 + mod(abs(hashtext('m' || {conversation})), {len(PRICES)})]"


def _conversations(count: int, people: int, group_name: str) -> None:
    per = MESSAGES_PER_CONVERSATION
    insert_select(
        Conversation,
        {
            "id": _key("c", group_name, "c"),
            "owner_id": "team.id",
            "title": "'Question ' || c",
            "model": _model("c"),
            "current_leaf_id": _key("m", group_name, f"c * {per} + {per - 1}"),
            "created_at": _moment("c"),
            "updated_at": f"{_moment('c')} + '{per} seconds'::interval",
        },
        f"generate_series(0, %s - 1) c JOIN team ON team.n = mod(c, {people})",
        [count],
    )


def _messages(conversations: int, group_name: str) -> None:
    per = MESSAGES_PER_CONVERSATION
    reply = "mod(m, 2) = 1"
    number = f"(c * {per} + m)"
    given = {
        "id": _key("m", group_name, number),
        "conversation_id": _key("c", group_name, "c"),
        "parent_id": f"CASE WHEN m > 0 THEN {_key('m', group_name, f'({number} - 1)')} END",
        "role": f"CASE WHEN {reply} THEN 'assistant' ELSE 'user' END",
        "content": f"CASE WHEN {reply} THEN 'Here is a short answer.' ELSE 'How do I sum?' END",
        "model": f"CASE WHEN {reply} THEN {_model('c')} ELSE '' END",
        "prompt_tokens": f"CASE WHEN {reply} THEN 100 + m * 40 END",
        "completion_tokens": f"CASE WHEN {reply} THEN 20 + mod(c * 7 + m * 13, 900) END",
        "total_tokens": f"CASE WHEN {reply} THEN 120 + m * 40 + mod(c * 7 + m * 13, 900) END",
        "created_at": f"{_moment('c')} + (m || ' seconds')::interval",
        "updated_at": f"{_moment('c')} + (m || ' seconds')::interval",
    }
    source = f"generate_series(0, %s - 1) c CROSS JOIN generate_series(0, {per - 1}) m"
    insert_select(Message, given, source, [conversations])


def _ledger(group: Group) -> int:
    """The ledger of the group's replies, as record_reply would have written it."""
    message, conversation = Message._meta.db_table, Conversation._meta.db_table
    members = get_user_model().groups.through._meta.db_table
    sql = f"""
        INSERT INTO {DailyUsage._meta.db_table} (user_id, day, model, prompt_tokens,
            completion_tokens, total_tokens, replies, estimated_total_tokens,
            estimated_replies, cost)
        SELECT c.owner_id, (m.updated_at AT TIME ZONE %s)::date, m.model,
            SUM(m.prompt_tokens), SUM(m.completion_tokens), SUM(m.total_tokens), COUNT(*), 0, 0,
            SUM(m.prompt_tokens * COALESCE(p.input_price_per_million, 0)
                + m.completion_tokens * COALESCE(p.output_price_per_million, 0)) / 1000000.0
        FROM {message} m JOIN {conversation} c ON c.id = m.conversation_id
            JOIN {members} g ON g.user_id = c.owner_id AND g.group_id = %s
            LEFT JOIN {ChatModel._meta.db_table} p ON p.name = m.model
        WHERE m.role = 'assistant' AND m.total_tokens IS NOT NULL
        GROUP BY 1, 2, 3
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [settings.TIME_ZONE, group.pk])
        return cursor.rowcount
