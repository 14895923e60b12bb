"""The sidebar's JSON views: more of the list, search, and the owner's actions on a
conversation (rename, pin, archive, delete)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from chat.models import Conversation
from chat.web import sidebar
from chat.web.views.access import AuthenticatedHttpRequest, get_conversation_for_user


@never_cache
@require_GET
@login_required
def conversation_list(request: AuthenticatedHttpRequest) -> JsonResponse:
    """More of the sidebar ("Show more"), or the archived chats."""
    try:
        offset = max(0, int(request.GET.get("offset") or 0))
    except ValueError:
        return _error("offset must be a number.")
    archived = request.GET.get("archived") == "1"
    page = sidebar.sidebar_page(request.user, archived=archived, offset=offset)
    return JsonResponse(page.as_dict())


@never_cache
@require_GET
@login_required
def search(request: AuthenticatedHttpRequest) -> JsonResponse:
    query = request.GET.get("q", "")
    return JsonResponse({"query": query, "results": sidebar.search(request.user, query)})


@require_POST
@login_required
def rename(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    conversation = get_conversation_for_user(request, conversation_id)
    try:
        sidebar.rename(conversation, request.POST.get("title", ""))
    except sidebar.InvalidTitle as error:
        return _error(str(error))
    return JsonResponse(
        {"id": str(conversation.id), "title": conversation.title, **_changed(conversation)}
    )


@require_POST
@login_required
def pin(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    return _set_flag(request, conversation_id, sidebar.set_pinned)


@require_POST
@login_required
def archive(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    return _set_flag(request, conversation_id, sidebar.set_archived)


@require_POST
@login_required
def delete_conversation(
    request: AuthenticatedHttpRequest, conversation_id: uuid.UUID
) -> HttpResponse:
    get_conversation_for_user(request, conversation_id).delete()
    if _wants_json(request):
        return JsonResponse({"deleted": str(conversation_id)})
    return redirect("chat:home")


def _set_flag(
    request: AuthenticatedHttpRequest,
    conversation_id: uuid.UUID,
    setter: Callable[[Conversation, bool], Conversation],
) -> JsonResponse:
    conversation = get_conversation_for_user(request, conversation_id)
    try:
        value = sidebar.parse_flag(request.POST.get("value"))
    except ValueError as error:
        return _error(str(error))
    setter(conversation, value)
    return JsonResponse(_changed(conversation))


def _changed(conversation: Conversation) -> dict[str, Any]:
    return {"conversation": sidebar.summary(conversation)}


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)
