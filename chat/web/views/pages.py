"""The chat page: a new chat, or one of your conversations with its whole transcript,
under the announcements you haven't dismissed."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from chat.models import Announcement, ChatModel, Conversation
from chat.turns.recovery import recover_once
from chat.usage import policy
from chat.web import sidebar
from chat.web.transcript import transcript
from chat.web.views.access import AuthenticatedHttpRequest, get_conversation_for_user


@never_cache
@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@never_cache
@login_required
def conversation(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    return _chat_page(request, get_conversation_for_user(request, conversation_id))


def _chat_page(
    request: AuthenticatedHttpRequest, conversation: Conversation | None
) -> HttpResponse:
    recover_once()
    context = {
        "sidebar": sidebar.sidebar_page(request.user),
        "conversation": conversation,
        "transcript": transcript(conversation) if conversation else [],
        "model_name": conversation.model if conversation else _default_model(request),
        "max_message_chars": settings.GLMWEB_MAX_MESSAGE_CHARS,
        "announcements": list(Announcement.objects.active_for(request.user, timezone.now())),
    }
    return render(request, "chat/chat.html", context)


def _default_model(request: AuthenticatedHttpRequest) -> str:
    """A new chat's model: the default among those this person may use."""
    return policy.catalog_for(request.user.pk, ChatModel.objects.catalog()).default()
