from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from chat.generation import recover_once
from chat.models import Conversation
from chat.transcript import transcript


def _get_conversation_for_user(request: HttpRequest, conversation_id: uuid.UUID) -> Conversation:
    """Another user's conversation is as "not found" as a missing one."""
    try:
        return Conversation.objects.owned_by(request.user).get(id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation") from None


def _chat_page(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    recover_once()
    context = {
        "conversations": Conversation.objects.owned_by(request.user).for_sidebar(),
        "conversation": conversation,
        "transcript": transcript(conversation) if conversation else [],
        "model_name": conversation.model if conversation else settings.UPSTREAM_MODEL,
        "max_message_chars": settings.GLMWEB_MAX_MESSAGE_CHARS,
    }
    return render(request, "chat/chat.html", context)


@never_cache
@login_required
def home(request: HttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@never_cache
@login_required
def conversation(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    return _chat_page(request, _get_conversation_for_user(request, conversation_id))


@require_POST
@login_required
def delete_conversation(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    _get_conversation_for_user(request, conversation_id).delete()
    return redirect("chat:home")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    ok = all(checks.values())
    return JsonResponse({"ok": ok, **checks}, status=200 if ok else 503)


def _redis_ok() -> bool:
    if not settings.REDIS_URL:
        return True
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
