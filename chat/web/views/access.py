"""Who may see what: the signed-in request, and owner lookups that answer 404 for
anything not yours (another person's conversation is as "not found" as a missing one)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.http import Http404, HttpRequest

from chat.models import Conversation, Message


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a `login_required` view: its user is signed in."""

    user: User


def get_conversation_for_user(
    request: AuthenticatedHttpRequest, conversation_id: uuid.UUID
) -> Conversation:
    try:
        return Conversation.objects.owned_by(request.user).get(id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation") from None


def get_reply_for_user(
    request: AuthenticatedHttpRequest, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    try:
        return Message.objects.get(
            id=message_id,
            conversation_id=conversation_id,
            conversation__owner=request.user,
            role=Message.Role.ASSISTANT,
        )
    except Message.DoesNotExist:
        raise Http404("No such reply") from None
