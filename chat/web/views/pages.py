"""The chat page: a new chat (with its example prompts), or one of your conversations
with its whole transcript, under the announcements you haven't dismissed; the header
offers the models this person may use."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from chat.models import Announcement, ChatModel, Conversation, ExamplePrompt
from chat.params import Catalog, default_settings
from chat.turns.recovery import recover_once
from chat.usage import policy
from chat.web import sidebar
from chat.web.transcript import page_transcript
from chat.web.views.access import AuthenticatedHttpRequest, get_conversation_for_user

EXAMPLES_SHOWN = 4


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
    catalog = policy.catalog_for(request.user.pk, ChatModel.objects.catalog())
    defaults = default_settings(catalog)
    current = conversation.current_settings() if conversation else defaults
    model = catalog.named(current.model)
    context = {
        "sidebar": sidebar.sidebar_page(request.user),
        "conversation": conversation,
        "transcript": page_transcript(conversation) if conversation else [],
        "model_name": current.model,
        "model_label": (model.label or model.name) if model else current.model,
        "models": _models(catalog),
        "custom": current.customised(defaults),
        "settings": current.as_dict(),
        "examples": [] if conversation else list(ExamplePrompt.objects.shown()[:EXAMPLES_SHOWN]),
        "max_message_chars": settings.GLMWEB_MAX_MESSAGE_CHARS,
        "announcements": list(Announcement.objects.active_for(request.user, timezone.now())),
    }
    return render(request, "chat/chat.html", context)


def _models(catalog: Catalog) -> list[dict[str, object]]:
    """The header's model picker, and the names replies show: label and context size."""
    return [model.as_dict() for model in catalog.models]
