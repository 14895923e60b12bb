"""The benchmark's smoke run (`python -m bench --quick`), so it can't rot.

It starts the fake upstream and a daphne worker on a fresh SQLite database and
streams a few replies through the real socket. Only delivery is asserted here:
timings belong to the benchmark's report, never to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count, Sum

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_delivers_every_token_without_errors(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--backends", "sqlite", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| figure" in run.stdout and "tokens delivered" in run.stdout

    backend = json.loads(output.read_text())["backends"]["sqlite+memory"]
    scenarios = [value for key, value in backend.items() if key.startswith("streams_")]
    scenarios.append(backend["long_stream"])
    scenarios.append(backend["first_token_1_stream"])
    assert len(scenarios) >= 3
    for scenario in scenarios:
        for side in ("direct", "relay", "relay_burst2"):
            if side not in scenario:
                continue
            result = scenario[side]
            assert result["errors"] == 0, result["error_samples"]
            assert result["tokens_delivered"] == result["tokens_expected"]
            assert result["streams_complete_in_order"] == result["streams"]
    assert backend["leak"]["errors"] == 0
    assert backend["queries"]["turn_20_tokens"]["outcome"] == "done"
    assert backend["queries"]["turn_2000_tokens"]["outcome"] == "done"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the team builder is PostgreSQL SQL")
def test_the_team_builder_writes_a_ledger_that_matches_its_messages(admin_client: Any) -> None:
    from bench import team_data
    from chat.models import DailyUsage, Message

    group = team_data.build(5, 200, "smoke-team", log=lambda line: None)

    replies = Message.objects.filter(conversation__owner__groups=group, role="assistant")
    assert Message.objects.filter(conversation__owner__groups=group).count() == 200
    expected = replies.aggregate(total=Sum("total_tokens"), count=Count("id"))
    ledger = DailyUsage.objects.filter(user__groups=group)
    assert ledger.aggregate(total=Sum("total_tokens"), count=Sum("replies")) == expected
    page = admin_client.get(f"/admin/chat/dailyusage/report/?by=person&window=30d&group={group.pk}")
    assert page.status_code == 200 and "of group smoke-team" in page.content.decode()
