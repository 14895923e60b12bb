"""The upstream client's settings, from Django's (chat.upstream reads no settings)."""

from __future__ import annotations

from django.conf import settings

from chat import upstream


def upstream_config() -> upstream.UpstreamConfig:
    return upstream.UpstreamConfig(
        base_url=settings.UPSTREAM_BASE_URL,
        api_key=settings.UPSTREAM_API_KEY,
        connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
        chunk_timeout=settings.UPSTREAM_CHUNK_TIMEOUT,
        deadline=settings.UPSTREAM_DEADLINE,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
        retry_after_max=settings.UPSTREAM_RETRY_AFTER_MAX_SECONDS,
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        keepalive_connections=settings.UPSTREAM_KEEPALIVE_CONNECTIONS,
        read_interval=settings.GLMWEB_COALESCE_SECONDS,
    )
