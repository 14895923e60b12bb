"""Seed a realistic data set for trying the admin at scale.

    manage.py seed --users 1000 --messages 1000000 --days 90

People of very different appetites (a few heavy users, a long tail), several
models, conversations of 2 to 40 messages spread over the last `--days` days,
replies that completed, were stopped, failed or were cut (those carry
estimated usage), then the usage ledger rebuilt from them. Rows go in with
bulk_create in batches; seeding is deterministic for a given --seed.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.utils import timezone

from chat.models import Conversation, Message
from chat.usage import ledger as usage

MODELS = [("glm-5", 0.6), ("glm-4.6", 0.25), ("glm-4.5-air", 0.15)]
# (status, finish_reason, estimated, share)
OUTCOMES = [
    (Message.Status.COMPLETE, "stop", False, 0.90),
    (Message.Status.COMPLETE, "length", False, 0.03),
    (Message.Status.STOPPED, "", True, 0.04),
    (Message.Status.ERROR, "", True, 0.015),
    (Message.Status.INTERRUPTED, "", True, 0.015),
]
QUESTIONS = [
    "How do I read a CSV file in Python and sum one column?",
    "Explain the difference between a process and a thread.",
    "Write a haiku about database indexes.",
    "What is a good name for a bakery that also sells books?",
    "Summarise the causes of the French Revolution in five points.",
    "Can you review this SQL query for performance problems?",
    "Translate 'the meeting is moved to Thursday' into German.",
    "Why does my React component render twice?",
]
ANSWERS = [
    "Here is a short answer.\n\n```python\nimport csv\n\nwith open('data.csv') as f:\n"
    "    print(sum(float(row['amount']) for row in csv.DictReader(f)))\n```\n",
    "**Processes** have their own memory; **threads** share their process's memory.\n\n"
    "- cheaper to start: threads\n- safer isolation: processes\n",
    "Rows sorted by key —\nthe planner skips the long scan;\nautumn leaves, one page.",
    "A few ideas:\n\n1. *Crumb & Chapter*\n2. *Proof & Page*\n3. *The Rising Shelf*\n",
    "| cause | weight |\n|---|---|\n| debt | high |\n| bread prices | high |\n",
    "Add an index on `(customer_id, created_at)` and avoid `SELECT *`.",
    "Das Treffen wird auf Donnerstag verschoben.",
    "In development, `StrictMode` renders twice on purpose to surface side effects.",
]
REASONING = "Let me think about what is being asked and answer concisely."


@contextmanager
def given_timestamps(*model_classes: type[models.Model]) -> Iterator[None]:
    """Let bulk_create keep the created_at/updated_at we set (auto_now would overwrite)."""
    saved = []
    for model in model_classes:
        for name in ("created_at", "updated_at"):
            field = model._meta.get_field(name)
            assert isinstance(field, models.DateField)
            saved.append((field, field.auto_now, field.auto_now_add))
            field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


class Command(BaseCommand):
    help = "Seed users, conversations and messages (and the usage ledger) for trying the admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=1000)
        parser.add_argument("--messages", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=1, help="Random seed (deterministic).")
        parser.add_argument("--prefix", default="seed", help="Usernames are <prefix>00001 …")
        parser.add_argument("--password", default="seed password 1234")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        self.random = random.Random(options["seed"])
        self.batch = options["batch_size"]
        self.now = timezone.now()
        self.days = options["days"]
        started = time.monotonic()
        users = self.create_users(options["users"], options["prefix"], options["password"])
        weights = [self.random.paretovariate(1.2) for _ in users]
        written = 0
        with given_timestamps(Conversation, Message):
            while written < options["messages"]:
                written += self.create_batch(users, weights, options["messages"] - written)
                self.stdout.write(f"  {written:,} messages", ending="\r")
                self.stdout.flush()
        rows = usage.rebuild_ledger()
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {len(users):,} users and {written:,} messages "
                f"({rows:,} usage rows) in {time.monotonic() - started:.0f} s."
            )
        )

    def create_users(self, count: int, prefix: str, password: str) -> list[int]:
        User = get_user_model()
        if User.objects.filter(username__startswith=prefix).exists():
            raise CommandError(f"Users named {prefix}… exist already: use another --prefix.")
        hashed = make_password(password)
        joined = self.now - timedelta(days=self.days)
        User.objects.bulk_create(
            [
                User(username=f"{prefix}{i:05d}", password=hashed, date_joined=joined)
                for i in range(1, count + 1)
            ],
            batch_size=self.batch,
        )
        return list(
            User.objects.filter(username__startswith=prefix)
            .order_by("id")
            .values_list("id", flat=True)
        )

    def create_batch(self, users: list[int], weights: list[float], remaining: int) -> int:
        conversations: list[Conversation] = []
        messages: list[Message] = []
        while len(messages) < self.batch and len(messages) < remaining:
            length = min(2 * self.random.randint(1, 20), remaining - len(messages))
            conversation, thread = self.conversation(
                self.random.choices(users, weights)[0], max(length, 1)
            )
            conversations.append(conversation)
            messages.extend(thread)
        with transaction.atomic():
            Conversation.objects.bulk_create(conversations, batch_size=self.batch)
            Message.objects.bulk_create(messages, batch_size=self.batch)
        return len(messages)

    def conversation(self, owner_id: int, length: int) -> tuple[Conversation, list[Message]]:
        r = self.random
        model = r.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]
        at = self.now - timedelta(seconds=r.uniform(0, self.days * 86400))
        question = r.randrange(len(QUESTIONS))
        conversation = Conversation(
            id=uuid.UUID(int=r.getrandbits(128), version=4),
            owner_id=owner_id,
            title=QUESTIONS[question][:60],
            model=model,
            created_at=at,
            updated_at=at,
        )
        thread: list[Message] = []
        parent: uuid.UUID | None = None
        prompt = 20
        for index in range(length):
            at = min(at + timedelta(seconds=r.uniform(5, 600)), self.now)
            message = (
                self.user_message(conversation, parent, at, (question + index) % len(QUESTIONS))
                if index % 2 == 0
                else self.reply(conversation, parent, at, model, prompt)
            )
            prompt += 30 + (message.completion_tokens or 0)
            thread.append(message)
            parent = message.id
            at = message.updated_at
        conversation.updated_at = at
        return conversation, thread

    def user_message(
        self, conversation: Conversation, parent: uuid.UUID | None, at: datetime, index: int
    ) -> Message:
        return Message(
            id=uuid.UUID(int=self.random.getrandbits(128), version=4),
            conversation=conversation,
            parent_id=parent,
            role=Message.Role.USER,
            content=QUESTIONS[index],
            created_at=at,
            updated_at=at,
        )

    def reply(
        self,
        conversation: Conversation,
        parent: uuid.UUID | None,
        at: datetime,
        model: str,
        prompt: int,
    ) -> Message:
        r = self.random
        status, finish, estimated, _ = r.choices(OUTCOMES, [o[3] for o in OUTCOMES])[0]
        completion = 0 if status == Message.Status.ERROR else r.randint(20, 1500)
        ttft = None if status == Message.Status.ERROR else r.randint(150, 3000)
        duration = r.randint(300, 4000) + completion * r.randint(8, 25)
        answer = ANSWERS[r.randrange(len(ANSWERS))]
        return Message(
            id=uuid.UUID(int=r.getrandbits(128), version=4),
            conversation=conversation,
            parent_id=parent,
            role=Message.Role.ASSISTANT,
            content="" if status == Message.Status.ERROR else answer,
            reasoning=REASONING if r.random() < 0.3 else "",
            status=status,
            finish_reason=finish,
            error_code={"error": "upstream_overloaded", "interrupted": "upstream_protocol"}.get(
                status, ""
            ),
            error_message="The model is overloaded." if status == Message.Status.ERROR else "",
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            usage_estimated=estimated,
            ttft_ms=ttft,
            duration_ms=duration,
            created_at=at,
            updated_at=min(at + timedelta(milliseconds=duration), self.now),
        )
