"""Sampling parameters a client may set, checked before anything is saved or sent."""

from __future__ import annotations

from typing import Any

MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 100
MAX_TOKENS_LIMIT = 131_072


class InvalidParams(ValueError):
    """The message says which parameter is wrong and what it may be."""


def clean_params(params: object) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidParams("Parameters must be an object.")
    unknown = set(params) - {"temperature", "top_p", "max_tokens", "stop"}
    if unknown:
        raise InvalidParams(f"Unknown parameter: {sorted(unknown)[0]}.")
    cleaned: dict[str, Any] = {}
    if params.get("temperature") is not None:
        cleaned["temperature"] = _number(params["temperature"], "Temperature", 0, 2)
    if params.get("top_p") is not None:
        cleaned["top_p"] = _number(params["top_p"], "Top P", 0, 1)
    if params.get("max_tokens") is not None:
        cleaned["max_tokens"] = _max_tokens(params["max_tokens"])
    if params.get("stop") is not None:
        cleaned["stop"] = _stop(params["stop"])
    return cleaned


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a number from {low:g} to {high:g}.")
    return float(value)


def _max_tokens(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise InvalidParams(f"Max tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT:,}.")
    return value


def _stop(value: object) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stops)
    ):
        raise InvalidParams(
            f"Stop sequences must be up to {MAX_STOP_SEQUENCES} non-empty strings "
            f"of at most {MAX_STOP_CHARS} characters."
        )
    return stops
