"""``/healthz`` for load balancers and monitors: can this worker reach its database and Redis?"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """``redis`` is null when none is configured: nothing to check is not a passed check."""
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    ok = all(value is not False for value in checks.values())
    return JsonResponse({"ok": ok, **checks}, status=200 if ok else 503)


def _redis_ok() -> bool | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return False
    return True
