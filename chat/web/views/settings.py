"""A conversation's settings and a person's presets: small JSON views for the settings panel.

Every value goes through chat.params; an error answers 400 with ``errors``, a
message per field. Another person's conversation or preset is a 404.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from chat.models import ChatModel, Preset
from chat.params import (
    MAX_STOP_SEQUENCES,
    MAX_TOKENS_LIMIT,
    Catalog,
    ConversationSettings,
    InvalidParams,
    clean_settings,
    default_settings,
)
from chat.text import one_line
from chat.usage import policy
from chat.web.views.access import AuthenticatedHttpRequest, get_conversation_for_user

PRESET_NAME_CHARS = 80


class BadRequest(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def new_chat_settings(request: AuthenticatedHttpRequest) -> JsonResponse:
    """A new chat: GET offers the defaults; POST checks the chosen settings, which
    the page then sends with the first message (nothing is saved here)."""
    catalog = _catalog(request)
    if request.method == "GET":
        return JsonResponse(_panel(request, default_settings(catalog), catalog))
    try:
        chosen = clean_settings(_json_body(request), catalog)
    except (InvalidParams, BadRequest) as error:
        return _errors(error.errors)
    return JsonResponse(_panel(request, chosen, catalog))


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def conversation_settings(
    request: AuthenticatedHttpRequest, conversation_id: uuid.UUID
) -> JsonResponse:
    conversation = get_conversation_for_user(request, conversation_id)
    catalog = _catalog(request)
    if request.method == "POST":
        try:
            chosen = clean_settings(_json_body(request), catalog)
        except (InvalidParams, BadRequest) as error:
            return _errors(error.errors)
        conversation.apply_settings(chosen)
        conversation.save(update_fields=["model", "system_prompt", "params"])
    return JsonResponse(_panel(request, conversation.current_settings(), catalog))


@require_POST
@login_required
def create_preset(request: AuthenticatedHttpRequest) -> JsonResponse:
    """Save settings under a name, unique among the person's presets."""
    try:
        data = _json_body(request)
        name = _preset_name(data.get("name"))
        chosen = clean_settings(data.get("settings"), _catalog(request))
    except (InvalidParams, BadRequest) as error:
        return _errors(error.errors)
    try:
        with transaction.atomic():
            preset = Preset.objects.create(
                owner=request.user,
                name=name,
                model=chosen.model,
                system_prompt=chosen.system_prompt,
                params=chosen.params,
            )
    except IntegrityError:
        return _errors({"name": f"You already have a preset named “{name}”. Pick another name."})
    return JsonResponse({"preset": _preset_dict(preset)}, status=201)


@require_POST
@login_required
def delete_preset(request: AuthenticatedHttpRequest, preset_id: int) -> JsonResponse:
    deleted, _ = Preset.objects.filter(id=preset_id, owner=request.user).delete()
    if not deleted:
        raise Http404("No such preset")
    return JsonResponse({"deleted": preset_id})


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):
        raise BadRequest({"settings": "Send the settings as JSON."}) from None
    if not isinstance(data, dict):
        raise BadRequest({"settings": "Send the settings as a JSON object."})
    return data


def _preset_name(value: object) -> str:
    name = one_line(value) if isinstance(value, str) else ""
    if not name:
        raise BadRequest({"name": "Give the preset a name."})
    if len(name) > PRESET_NAME_CHARS:
        raise BadRequest({"name": f"A preset name can be at most {PRESET_NAME_CHARS} characters."})
    return name


def _errors(errors: dict[str, str]) -> JsonResponse:
    return JsonResponse({"error": " ".join(errors.values()), "errors": errors}, status=400)


def _catalog(request: AuthenticatedHttpRequest) -> Catalog:
    """The models this person may choose: enabled, and allowed by their groups."""
    return policy.catalog_for(request.user.pk, ChatModel.objects.catalog())


def _panel(
    request: AuthenticatedHttpRequest, current: ConversationSettings, catalog: Catalog
) -> dict[str, Any]:
    presets = Preset.objects.filter(owner=request.user).order_by("name")
    return {
        "settings": current.as_dict(),
        "custom": current.customised(default_settings(catalog)),
        "models": [model.as_dict() for model in catalog.models],
        "presets": [_preset_dict(preset) for preset in presets],
        "limits": {
            "system_prompt_chars": settings.GLMWEB_MAX_SYSTEM_PROMPT_CHARS,
            "stop_sequences": MAX_STOP_SEQUENCES,
            "max_tokens": MAX_TOKENS_LIMIT,
        },
    }


def _preset_dict(preset: Preset) -> dict[str, Any]:
    return {
        "id": preset.id,
        "name": preset.name,
        "settings": {
            "model": preset.model,
            "system_prompt": preset.system_prompt,
            "params": preset.params,
        },
    }
