"""A conversation's settings (model, system prompt, sampling parameters), checked
before anything is saved or sent.

The same checks serve the settings view, presets, the ``send`` frame and
imports. Errors are collected per field, so a form can show each next to its
field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat.text import UNSTORABLE_MESSAGE, is_storable

MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 100
MAX_TOKENS_LIMIT = 131_072
PARAM_NAMES = ("temperature", "top_p", "max_tokens", "stop", "thinking")
SETTING_NAMES = ("model", "system_prompt", "params")


class InvalidParams(ValueError):
    """``errors`` maps each wrong field to what it may be; str() joins them."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Model:
    name: str
    context_tokens: int
    thinking: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "context_tokens": self.context_tokens, "thinking": self.thinking}


@dataclass(frozen=True)
class ConversationSettings:
    model: str
    system_prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "system_prompt": self.system_prompt, "params": self.params}


def models() -> list[Model]:
    entries: list[dict[str, Any]] = settings.GLMWEB_MODELS
    return [Model(**entry) for entry in entries]


def model_named(name: str) -> Model | None:
    return next((model for model in models() if model.name == name), None)


def context_tokens(name: str) -> int:
    """A model's context budget; a model no longer offered keeps the default's."""
    model = model_named(name) or model_named(settings.UPSTREAM_MODEL)
    return model.context_tokens if model else 128_000


def default_settings() -> ConversationSettings:
    """What a new conversation starts with (GLMWEB_DEFAULT_* settings)."""
    try:
        params = json.loads(settings.GLMWEB_DEFAULT_PARAMS or "{}")
        return clean_settings(
            {
                "model": settings.UPSTREAM_MODEL,
                "system_prompt": settings.GLMWEB_DEFAULT_SYSTEM_PROMPT,
                "params": params,
            }
        )
    except (ValueError, InvalidParams) as error:
        raise ImproperlyConfigured(f"GLMWEB_DEFAULT_PARAMS: {error}") from None


def clean_settings(data: object) -> ConversationSettings:
    """Whole settings; a field left out takes its empty value (the default model)."""
    if not isinstance(data, dict):
        raise InvalidParams({"settings": "Settings must be an object."})
    errors: dict[str, str] = {}
    unknown = set(data) - set(SETTING_NAMES)
    if unknown:
        errors["settings"] = f"Unknown setting: {sorted(unknown)[0]}."
    model = _model(data.get("model"), errors)
    system_prompt = _system_prompt(data.get("system_prompt"), errors)
    params: dict[str, Any] = {}
    try:
        params = clean_params(data.get("params"), model)
    except InvalidParams as error:
        errors.update(error.errors)
    if errors:
        raise InvalidParams(errors)
    return ConversationSettings(model=model, system_prompt=system_prompt, params=params)


def clean_params(params: object, model: str | None = None) -> dict[str, Any]:
    """Sampling parameters; with ``model``, thinking is refused if it has no such switch."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidParams({"params": "Parameters must be an object."})
    errors: dict[str, str] = {}
    unknown = set(params) - set(PARAM_NAMES)
    if unknown:
        errors["params"] = f"Unknown parameter: {sorted(unknown)[0]}."
    cleaned: dict[str, Any] = {}
    for name, check in CHECKS.items():
        if params.get(name) is None or params[name] == []:
            continue
        try:
            cleaned[name] = check(params[name])
        except ValueError as error:
            errors[name] = str(error)
    if "thinking" in cleaned and model is not None and not _thinks(model):
        errors["thinking"] = f"{model} has no thinking switch."
    if errors:
        raise InvalidParams(errors)
    return cleaned


def _model(value: object, errors: dict[str, str]) -> str:
    if value is None or value == "":
        return settings.UPSTREAM_MODEL
    if not isinstance(value, str) or model_named(value) is None:
        names = ", ".join(model.name for model in models())
        errors["model"] = f"Choose one of the models offered: {names}."
        return settings.UPSTREAM_MODEL
    return value


def _system_prompt(value: object, errors: dict[str, str]) -> str:
    limit = settings.GLMWEB_MAX_SYSTEM_PROMPT_CHARS
    if value is None:
        return ""
    if not isinstance(value, str):
        errors["system_prompt"] = "The system prompt must be text."
        return ""
    if len(value) > limit:
        errors["system_prompt"] = (
            f"The system prompt can be at most {limit:,} characters; this one has {len(value):,}."
        )
    elif not is_storable(value):
        errors["system_prompt"] = UNSTORABLE_MESSAGE
    return value.strip()


def _thinks(model: str) -> bool:
    found = model_named(model)
    return found is not None and found.thinking


def _number(name: str, low: float, high: float) -> Any:
    def check(value: object) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise ValueError(f"{name} must be a number from {low:g} to {high:g}.")
        return float(value)

    return check


def _max_tokens(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ValueError(f"Max tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT:,}.")
    return value


def _stop(value: object) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stops)
    ):
        raise ValueError(
            f"Stop sequences must be up to {MAX_STOP_SEQUENCES} non-empty strings "
            f"of at most {MAX_STOP_CHARS} characters."
        )
    if not all(is_storable(s) for s in stops):
        raise ValueError(UNSTORABLE_MESSAGE)
    return stops


def _thinking(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Thinking must be on (true) or off (false).")
    return value


CHECKS = {
    "temperature": _number("Temperature", 0, 2),
    "top_p": _number("Top P", 0, 1),
    "max_tokens": _max_tokens,
    "stop": _stop,
    "thinking": _thinking,
}
