"""Thumbs up or down, and a comment, on a reply: its owner's feedback for the admins."""

from __future__ import annotations

import json
import uuid

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_POST

from chat.web.views.access import AuthenticatedHttpRequest, get_reply_for_user

MAX_COMMENT_CHARS = 2000


class InvalidFeedback(Exception):
    pass


@require_POST
@login_required
def feedback(
    request: AuthenticatedHttpRequest, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> JsonResponse:
    """Save ``{"rating": 1 | -1 | null, "comment": str}`` on one of your replies."""
    reply = get_reply_for_user(request, conversation_id, message_id)
    try:
        rating, comment = _parse(request.body)
    except InvalidFeedback as error:
        return JsonResponse({"error": str(error)}, status=400)
    reply.rating = rating
    reply.feedback_comment = comment
    reply.feedback_at = timezone.now() if rating is not None or comment else None
    reply.save(update_fields=["rating", "feedback_comment", "feedback_at"])
    return JsonResponse({"rating": reply.rating, "comment": reply.feedback_comment})


def _parse(body: bytes) -> tuple[int | None, str]:
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidFeedback("Feedback must be JSON.") from None
    if not isinstance(data, dict):
        raise InvalidFeedback("Feedback must be a JSON object.")
    rating = data.get("rating")
    comment = data.get("comment", "")
    # bool is an int in Python: true must not pass for a thumbs up.
    if rating not in (1, -1, None) or isinstance(rating, bool):
        raise InvalidFeedback("rating must be 1, -1 or null.")
    if not isinstance(comment, str):
        raise InvalidFeedback("comment must be a string.")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidFeedback(f"A comment can be at most {MAX_COMMENT_CHARS:,} characters.")
    return rating, comment.strip()
