from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from chat import conversations, exporting
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
        "sidebar": conversations.sidebar_page(request.user),
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
    if _wants_json(request):
        return JsonResponse({"deleted": str(conversation_id)})
    return redirect("chat:home")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


# --- The sidebar ----------------------------------------------------------------


@never_cache
@require_GET
@login_required
def conversation_list(request: HttpRequest) -> JsonResponse:
    """More of the sidebar ("Show more"), or the archived chats."""
    try:
        offset = max(0, int(request.GET.get("offset") or 0))
    except ValueError:
        return _error("offset must be a number.")
    archived = request.GET.get("archived") == "1"
    page = conversations.sidebar_page(request.user, archived=archived, offset=offset)
    return JsonResponse(page.as_dict())


@never_cache
@require_GET
@login_required
def search(request: HttpRequest) -> JsonResponse:
    query = request.GET.get("q", "")
    return JsonResponse({"query": query, "results": conversations.search(request.user, query)})


@require_POST
@login_required
def rename(request: HttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    try:
        conversations.rename(conversation, request.POST.get("title", ""))
    except conversations.InvalidTitle as error:
        return _error(str(error))
    return JsonResponse(
        {"id": str(conversation.id), "title": conversation.title, **_changed(conversation)}
    )


@require_POST
@login_required
def pin(request: HttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    return _set_flag(request, conversation_id, conversations.set_pinned)


@require_POST
@login_required
def archive(request: HttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    return _set_flag(request, conversation_id, conversations.set_archived)


def _set_flag(request: HttpRequest, conversation_id: uuid.UUID, setter: Any) -> JsonResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    try:
        value = conversations.parse_flag(request.POST.get("value"))
    except ValueError as error:
        return _error(str(error))
    setter(conversation, value)
    return JsonResponse(_changed(conversation))


def _changed(conversation: Conversation) -> dict[str, Any]:
    return {"conversation": conversations.summary(conversation)}


# --- Export and import --------------------------------------------------------------


def _filename(conversation: Conversation, extension: str) -> str:
    return f"{slugify(str(conversation))[:60] or 'chat'}.{extension}"


@require_GET
@login_required
def export_json(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    response = JsonResponse(
        exporting.export_conversation(conversation), json_dumps_params={"ensure_ascii": False}
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(conversation, "json")}"'
    return response


@require_GET
@login_required
def export_markdown(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    response = HttpResponse(
        exporting.export_markdown(conversation), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(conversation, "md")}"'
    return response


@require_GET
@login_required
def export_account(request: HttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        exporting.export_account(request.user), content_type="application/json; charset=utf-8"
    )
    day = timezone.localdate().isoformat()
    name = slugify(request.user.get_username()) or "account"
    response["Content-Disposition"] = f'attachment; filename="glmweb-{name}-{day}.json"'
    return response


@require_POST
@login_required
def import_conversations(request: HttpRequest) -> JsonResponse:
    upload = request.FILES.get("file")
    if upload is None:
        return _error("Choose a file to import.")
    if upload.size is not None and upload.size > settings.GLMWEB_IMPORT_MAX_BYTES:
        limit = settings.GLMWEB_IMPORT_MAX_BYTES / (1024 * 1024)
        return _error(f"The file is larger than {limit:g} MB.", status=413)
    try:
        imported = exporting.import_file(request.user, upload.read())
    except exporting.ImportRefused as error:
        return _error(str(error))
    return JsonResponse(
        {
            "imported": len(imported),
            "conversations": [conversations.summary(c) for c in imported],
        }
    )


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
