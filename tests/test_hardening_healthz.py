"""/healthz says what it checked: Redis is null, not true, when none is configured."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_redis_is_null_when_no_redis_is_configured(client, settings) -> None:
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": True, "redis": None}


def test_an_unreachable_redis_fails_the_check(client, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["ok"] is False and response.json()["redis"] is False
