"""Export a conversation (JSON or Markdown) or a whole account, and import chats
(our JSON or ChatGPT's ``conversations.json``)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from chat.models import Conversation
from chat.web import exporting, sidebar
from chat.web.views.access import AuthenticatedHttpRequest, get_conversation_for_user


@require_GET
@login_required
def export_json(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = get_conversation_for_user(request, conversation_id)
    response = JsonResponse(
        exporting.export_conversation(conversation), json_dumps_params={"ensure_ascii": False}
    )
    response["Content-Disposition"] = _attachment(_filename(conversation, "json"))
    return response


@require_GET
@login_required
def export_markdown(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    conversation = get_conversation_for_user(request, conversation_id)
    response = HttpResponse(
        exporting.export_markdown(conversation), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = _attachment(_filename(conversation, "md"))
    return response


@require_GET
@login_required
def export_account(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        exporting.export_account(request.user), content_type="application/json; charset=utf-8"
    )
    day = timezone.localdate().isoformat()
    name = slugify(request.user.get_username()) or "account"
    response["Content-Disposition"] = _attachment(f"glmweb-{name}-{day}.json")
    return response


@require_POST
@login_required
def import_conversations(request: AuthenticatedHttpRequest) -> JsonResponse:
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
            "conversations": [sidebar.summary(c) for c in imported],
        }
    )


def _filename(conversation: Conversation, extension: str) -> str:
    return f"{slugify(str(conversation))[:60] or 'chat'}.{extension}"


def _attachment(filename: str) -> str:
    return f'attachment; filename="{filename}"'


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)
