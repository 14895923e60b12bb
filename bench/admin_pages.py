"""Render time and query count of the admin's heavy pages on a seeded database.

    createdb glmweb_seed   # once; then:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glmweb_seed \\
        .venv/bin/python manage.py migrate
    DATABASE_URL=... .venv/bin/python manage.py seed --users 1000 --messages 1000000 --days 90
    DATABASE_URL=... .venv/bin/python -m bench.admin_pages [--runs 20]

    # A team: one group of 1,000 people with 1M messages, built in SQL (bench/team_data.py)
    # on first use, then its tokens-and-cost report by person, model and day:
    DATABASE_URL=... .venv/bin/python -m bench.admin_pages --team-only [--runs 20]

Each page is rendered in-process through Django's test client (no network),
logged in as a superuser: a few warm-up runs, then `--runs` timed runs. It also
times the usage figures computed straight from the messages, the alternative
to the ledger (chat.usage.ledger), to show why the ledger exists. Target: < 300 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glmweb.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections, connection  # noqa: E402
from django.db.models import Count, Max, Q, Sum  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench import team_data  # noqa: E402
from chat.models import Conversation, DailyUsage, Message  # noqa: E402

TARGET_MS = 300


def measure(name: str, run: Callable[[], Any], runs: int) -> dict[str, Any]:
    for _ in range(3):
        run()
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    result = {
        "page": name,
        "queries": len(queries),
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
        "max_ms": round(times[-1], 1),
    }
    flag = "ok" if result["p95_ms"] < TARGET_MS else "SLOW"
    print(
        f"{name:<44} {result['queries']:>3} queries  median {result['median_ms']:>7.1f} ms"
        f"  p95 {result['p95_ms']:>7.1f} ms  max {result['max_ms']:>7.1f} ms  {flag}"
    )
    return result


def get(client: Client, url: str) -> Callable[[], Any]:
    def run() -> None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)

    return run


def usage_from_messages() -> None:
    """The usage page's figures without the ledger: every reply, grouped by owner."""
    today = timezone.localdate()
    since = today - timedelta(days=29)
    list(
        Message.objects.filter(role="assistant", total_tokens__isnull=False)
        .values("conversation__owner_id")
        .annotate(
            all=Sum("total_tokens"),
            d30=Sum("total_tokens", filter=Q(created_at__date__gte=since)),
            today=Sum("total_tokens", filter=Q(created_at__date=today)),
            replies=Count("id"),
            last=Max("created_at"),
        )
        .order_by()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--team", default="bench-team", help="The team's group name.")
    parser.add_argument("--team-people", type=int, default=1000)
    parser.add_argument("--team-messages", type=int, default=1_000_000)
    parser.add_argument("--team-only", action="store_true", help="Time the team's pages only.")
    args = parser.parse_args()
    # As in Django's own test runner: keep one connection, so queries can be counted.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']}: "
        f"{get_user_model().objects.count():,} users, "
        f"{Conversation.objects.count():,} conversations, "
        f"{Message.objects.count():,} messages, {DailyUsage.objects.count():,} ledger rows"
    )
    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    if connection.vendor == "postgresql":
        team_pages(client, args)
    if args.team_only:
        return 0
    longest = (
        Conversation.objects.annotate(n=Count("messages")).order_by("-n").values("id", "n")[:1]
    )[0]
    heaviest = (
        DailyUsage.objects.values("user_id")
        .annotate(total=Sum("total_tokens"))
        .order_by("-total")
        .first()
    )["user_id"]
    today = timezone.localdate()
    usage = reverse("admin:chat_dailyusage_changelist")
    conversations = reverse("admin:chat_conversation_changelist")
    pages = [
        ("admin usage page (all users, sorted by today)", usage),
        ("admin usage page, sorted by all time", f"{usage}?o=all&dir=desc"),
        (
            "admin usage page, date range",
            f"{usage}?from={today - timedelta(days=60)}&to={today - timedelta(days=30)}",
        ),
        ("admin usage CSV export (all users)", reverse("admin:chat_dailyusage_export")),
        (
            "admin per-user usage (heaviest user)",
            reverse("admin:chat_dailyusage_user", args=[heaviest]),
        ),
        (
            f"conversation change page ({longest['n']} messages)",
            reverse("admin:chat_conversation_change", args=[longest["id"]]),
        ),
        ("conversation list (first page)", conversations),
        ("conversation list, search owner or title", f"{conversations}?q=seed00001"),
        ("conversation list, search message text", f"{conversations}?q=text:haiku+indexes"),
        ("user usage page (heaviest user, own)", None),
    ]
    results = []
    for name, url in pages:
        if url is None:
            own = Client(HTTP_HOST="localhost")
            own.force_login(get_user_model().objects.get(pk=heaviest))
            results.append(measure(name, get(own, reverse("chat:usage")), args.runs))
        else:
            results.append(measure(name, get(client, url), args.runs))
    print("\nFor comparison, without the ledger:")
    results.append(measure("usage figures aggregated from messages", usage_from_messages, 5))
    return 0


def team_pages(client: Client, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The tokens-and-cost report for one group of --team-people with --team-messages."""
    group = Group.objects.filter(name=args.team).first()
    if group is None:
        print(f"Building {args.team}: this takes a few minutes.")
        group = team_data.build(args.team_people, args.team_messages, args.team)
    members = group.user_set.count()
    messages = Message.objects.filter(conversation__owner__groups=group).count()
    ledger = DailyUsage.objects.filter(user__groups=group)
    replies = Message.objects.filter(
        conversation__owner__groups=group, role="assistant", total_tokens__isnull=False
    ).aggregate(total=Sum("total_tokens"), count=Count("id"))
    from_ledger = ledger.aggregate(total=Sum("total_tokens"), count=Sum("replies"))
    assert from_ledger == replies, (from_ledger, replies)  # the ledger matches the messages
    print(
        f"team {group.name}: {members:,} people, {messages:,} messages, "
        f"{ledger.count():,} ledger rows (their sums match the replies')"
    )
    report = reverse("admin:chat_dailyusage_report")
    csv = reverse("admin:chat_dailyusage_report_csv")
    results = []
    for by in ("person", "model", "day"):
        for window in ("month", "30d"):
            url = f"{report}?by={by}&window={window}&group={group.pk}"
            results.append(measure(f"team report by {by}, {window}", get(client, url), args.runs))
    url = f"{csv}?by=person&window=30d&group={group.pk}"
    results.append(measure("team report CSV by person, 30d", get(client, url), args.runs))
    return results


if __name__ == "__main__":
    sys.exit(main())
