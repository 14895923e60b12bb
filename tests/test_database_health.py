"""PostgreSQL connections: one the server ended is replaced before it is used
(Django's own backend with CONN_HEALTH_CHECKS, as glmweb/settings.py sets it).

These run whenever DATABASE_URL points at PostgreSQL (.ci/run always sets it).
"""

from __future__ import annotations

import os
import time

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.db import connection, connections

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="needs DATABASE_URL on PostgreSQL",
    ),
    pytest.mark.django_db(transaction=True),
]


@database_sync_to_async
def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def end_backend(pid: int) -> None:
    """What a restart or an idle timeout does to a connection, from outside it."""
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):
            gone = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            if gone.fetchone() is None:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still running")


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the SELECT 1 health checks (Django's is_usable, run for real)."""
    checks: list[int] = []
    backend = type(connections["default"])
    is_usable = backend.is_usable

    def counted(self: object) -> bool:
        checks.append(1)
        return is_usable(self)

    monkeypatch.setattr(backend, "is_usable", counted)
    return checks


def test_the_database_backend_is_djangos_own() -> None:
    assert type(connections["default"]).__module__ == "django.db.backends.postgresql.base"


async def test_a_healthy_connection_is_reused() -> None:
    pids = [await backend_pid() for _ in range(4)]

    assert len(set(pids)) == 1


async def test_a_connection_the_server_ended_is_replaced_before_it_is_used(
    health_checks: list[int],
) -> None:
    first = await backend_pid()
    end_backend(first)

    second = await backend_pid()  # no error reaches the caller

    assert second != first
    assert health_checks  # Django's check found it ended, before the query
