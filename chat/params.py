"""A conversation's settings (model, system prompt, sampling parameters), checked
before anything is saved or sent.

The same checks serve the settings view, presets, the ``send`` frame and
imports. Errors are collected per field, so a form can show each next to its
field. The models offered come in a ``Catalog``: the admin's enabled model rows
(chat.models.ChatModel), read once per request or turn start by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal
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


MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Model:
    name: str
    context_tokens: int
    thinking: bool
    label: str = ""
    # Money per million tokens; None: unknown or free (costs nothing).
    input_price_per_million: Decimal | None = None
    output_price_per_million: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "context_tokens": self.context_tokens,
            "thinking": self.thinking,
        }

    @property
    def input_price(self) -> Decimal:
        return self.input_price_per_million or Decimal(0)

    @property
    def output_price(self) -> Decimal:
        return self.output_price_per_million or Decimal(0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """What these tokens cost at this model's prices."""
        return (prompt_tokens * self.input_price + completion_tokens * self.output_price) / MILLION


@dataclass(frozen=True)
class Catalog:
    """The models offered, in the admin's order."""

    models: tuple[Model, ...] = ()

    def named(self, name: str) -> Model | None:
        return next((model for model in self.models if model.name == name), None)

    def names(self) -> list[str]:
        return [model.name for model in self.models]

    def default(self) -> str:
        """UPSTREAM_MODEL while it is offered, else the first model offered."""
        if self.named(settings.UPSTREAM_MODEL) or not self.models:
            return str(settings.UPSTREAM_MODEL)
        return self.models[0].name

    def context_tokens(self, name: str) -> int:
        """A model's context budget; a model no longer offered keeps the default's."""
        model = self.named(name) or self.named(self.default())
        return model.context_tokens if model else 128_000

    def thinks(self, name: str) -> bool:
        found = self.named(name)
        return found is not None and found.thinking

    def only(self, names: Collection[str] | None) -> Catalog:
        """The models among ``names`` (None: all of them)."""
        if names is None:
            return self
        return Catalog(tuple(model for model in self.models if model.name in names))


@dataclass(frozen=True)
class ConversationSettings:
    model: str
    system_prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "system_prompt": self.system_prompt, "params": self.params}

    def customised(self, defaults: ConversationSettings) -> dict[str, bool]:
        """What differs from a new chat's defaults: the system prompt ("instructions"),
        the sampling parameters ("settings"). The model is shown on its own."""
        return {
            "instructions": self.system_prompt != defaults.system_prompt,
            "settings": self.params != defaults.params,
        }


def catalog_from_settings(entries: list[dict[str, Any]]) -> Catalog:
    """GLMWEB_MODELS as a catalog: what the admin's model rows are first seeded with."""
    return Catalog(tuple(Model(**entry) for entry in entries))


def default_settings(catalog: Catalog) -> ConversationSettings:
    """What a new conversation starts with (GLMWEB_DEFAULT_* settings).

    Thinking in GLMWEB_DEFAULT_PARAMS is dropped for a default model without the switch.
    """
    try:
        params = json.loads(settings.GLMWEB_DEFAULT_PARAMS or "{}")
        model = catalog.default()
        if isinstance(params, dict) and not catalog.thinks(model):
            params.pop("thinking", None)
        return ConversationSettings(
            model=model,
            system_prompt=clean_settings(
                {"system_prompt": settings.GLMWEB_DEFAULT_SYSTEM_PROMPT}, catalog
            ).system_prompt,
            params=clean_params(params),
        )
    except (ValueError, InvalidParams) as error:
        raise ImproperlyConfigured(f"GLMWEB_DEFAULT_PARAMS: {error}") from None


def clean_settings(data: object, catalog: Catalog) -> ConversationSettings:
    """Whole settings; a field left out takes its empty value (the default model).

    The model must be one of ``catalog``'s.
    """
    if not isinstance(data, dict):
        raise InvalidParams({"settings": "Settings must be an object."})
    errors: dict[str, str] = {}
    unknown = set(data) - set(SETTING_NAMES)
    if unknown:
        errors["settings"] = f"Unknown setting: {sorted(unknown)[0]}."
    model = _model(data.get("model"), catalog, errors)
    system_prompt = _system_prompt(data.get("system_prompt"), errors)
    params: dict[str, Any] = {}
    try:
        params = clean_params(data.get("params"), model, catalog)
    except InvalidParams as error:
        errors.update(error.errors)
    if errors:
        raise InvalidParams(errors)
    return ConversationSettings(model=model, system_prompt=system_prompt, params=params)


def clean_params(
    params: object, model: str | None = None, catalog: Catalog | None = None
) -> dict[str, Any]:
    """Sampling parameters; with ``model`` and ``catalog``, thinking is refused if the
    model has no such switch."""
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
    if (
        "thinking" in cleaned
        and model is not None
        and catalog is not None
        and not catalog.thinks(model)
    ):
        errors["thinking"] = f"{model} has no thinking switch."
    if errors:
        raise InvalidParams(errors)
    return cleaned


def _model(value: object, catalog: Catalog, errors: dict[str, str]) -> str:
    if value is None or value == "":
        return catalog.default()
    if not isinstance(value, str) or catalog.named(value) is None:
        names = ", ".join(catalog.names()) or "none is enabled"
        errors["model"] = f"Choose one of the models offered: {names}."
        return catalog.default()
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
