"""Checking a conversation's settings: each field's bounds and types, the model list, thinking."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat.params import (
    InvalidParams,
    catalog_from_settings,
    clean_params,
    clean_settings,
    default_settings,
)
from chat.upstream import ChatRequest
from glmweb.settings import env_models

MODELS = [
    {"name": "glm-5", "context_tokens": 200_000, "thinking": True},
    {"name": "glm-4.5-air", "context_tokens": 128_000, "thinking": False},
]
CATALOG = catalog_from_settings(MODELS)


@pytest.fixture(autouse=True)
def two_models(settings: Any) -> None:
    settings.UPSTREAM_MODEL = "glm-5"
    settings.GLMWEB_MAX_SYSTEM_PROMPT_CHARS = 50
    settings.GLMWEB_DEFAULT_SYSTEM_PROMPT = ""
    settings.GLMWEB_DEFAULT_PARAMS = "{}"


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(InvalidParams) as raised:
        clean_settings(data, CATALOG)
    return raised.value.errors


def test_good_settings_come_back_cleaned() -> None:
    cleaned = clean_settings(
        {
            "model": "glm-5",
            "system_prompt": "  Be brief.  ",
            "params": {
                "temperature": 1,
                "top_p": 0.5,
                "max_tokens": 100,
                "stop": ["END", "###"],
                "thinking": False,
            },
        },
        CATALOG,
    )
    assert cleaned.model == "glm-5"
    assert cleaned.system_prompt == "Be brief."
    assert cleaned.params == {
        "temperature": 1.0,
        "top_p": 0.5,
        "max_tokens": 100,
        "stop": ["END", "###"],
        "thinking": False,
    }


def test_left_out_fields_take_their_defaults() -> None:
    cleaned = clean_settings({}, CATALOG)
    assert (cleaned.model, cleaned.system_prompt, cleaned.params) == ("glm-5", "", {})
    assert clean_settings({"params": {"stop": [], "temperature": None}}, CATALOG).params == {}


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"temperature": -0.1}, "temperature", "from 0 to 2"),
        ({"temperature": 2.01}, "temperature", "from 0 to 2"),
        ({"temperature": "1"}, "temperature", "from 0 to 2"),
        ({"temperature": True}, "temperature", "from 0 to 2"),
        ({"top_p": 1.5}, "top_p", "from 0 to 1"),
        ({"top_p": -1}, "top_p", "from 0 to 1"),
        ({"max_tokens": 0}, "max_tokens", "whole number"),
        ({"max_tokens": 1.5}, "max_tokens", "whole number"),
        ({"max_tokens": 10**9}, "max_tokens", "whole number"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "up to 4"),
        ({"stop": [""]}, "stop", "non-empty"),
        ({"stop": ["x" * 101]}, "stop", "100 characters"),
        ({"stop": [1]}, "stop", "strings"),
        ({"thinking": "yes"}, "thinking", "on (true) or off"),
        ({"seed": 1}, "params", "Unknown parameter: seed"),
    ],
)
def test_each_bad_parameter_gets_its_own_message(params: dict, field: str, words: str) -> None:
    errors = errors_of({"model": "glm-5", "params": params})
    assert list(errors) == [field]
    assert words in errors[field]


def test_every_bad_field_is_reported_at_once() -> None:
    errors = errors_of(
        {
            "model": "gpt-9",
            "system_prompt": "x" * 51,
            "params": {"temperature": 3, "top_p": 2},
            "colour": "blue",
        }
    )
    assert set(errors) == {"settings", "model", "system_prompt", "temperature", "top_p"}
    assert errors["model"] == "Choose one of the models offered: glm-5, glm-4.5-air."
    assert "at most 50 characters; this one has 51" in errors["system_prompt"]
    assert errors["settings"] == "Unknown setting: colour."


def test_bounds_themselves_are_allowed() -> None:
    params = {"temperature": 0, "top_p": 1, "max_tokens": 1, "stop": "END"}
    assert clean_settings({"params": params}, CATALOG).params == {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 1,
        "stop": ["END"],
    }
    assert clean_settings({"system_prompt": "x" * 50}, CATALOG).system_prompt == "x" * 50


@pytest.mark.parametrize("data", [None, [], "glm-5", 3])
def test_settings_must_be_an_object(data: object) -> None:
    assert errors_of(data) == {"settings": "Settings must be an object."}


@pytest.mark.parametrize("bad", [["glm-5"], 5, {"name": "glm-5"}])
def test_the_model_must_be_a_name_from_the_list(bad: object) -> None:
    assert "model" in errors_of({"model": bad})


def test_the_system_prompt_must_be_text() -> None:
    assert errors_of({"system_prompt": ["Be brief."]}) == {
        "system_prompt": "The system prompt must be text."
    }


def test_thinking_only_for_a_model_that_takes_the_switch() -> None:
    assert clean_settings({"model": "glm-5", "params": {"thinking": True}}, CATALOG).params == {
        "thinking": True
    }
    errors = errors_of({"model": "glm-4.5-air", "params": {"thinking": False}})
    assert errors == {"thinking": "glm-4.5-air has no thinking switch."}
    # Unset is fine for any model.
    assert clean_settings({"model": "glm-4.5-air", "params": {}}, CATALOG).params == {}


def test_clean_params_alone_keeps_its_one_message_for_the_socket() -> None:
    with pytest.raises(InvalidParams) as raised:
        clean_params({"temperature": 7})
    assert str(raised.value) == "Temperature must be a number from 0 to 2."
    with pytest.raises(InvalidParams):
        clean_params([1])


def test_defaults_come_from_settings(settings: Any) -> None:
    settings.GLMWEB_DEFAULT_SYSTEM_PROMPT = "You are terse."
    settings.GLMWEB_DEFAULT_PARAMS = '{"temperature": 0.3, "thinking": false}'
    defaults = default_settings(CATALOG)
    assert defaults.as_dict() == {
        "model": "glm-5",
        "system_prompt": "You are terse.",
        "params": {"temperature": 0.3, "thinking": False},
    }


@pytest.mark.parametrize("bad", ['{"temperature": 9}', "not json", '{"seed": 1}'])
def test_bad_default_params_name_the_variable(settings: Any, bad: str) -> None:
    settings.GLMWEB_DEFAULT_PARAMS = bad
    with pytest.raises(ImproperlyConfigured, match="GLMWEB_DEFAULT_PARAMS"):
        default_settings(CATALOG)


def test_the_models_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMWEB_MODELS", "glm-5:200000:thinking, glm-4.5-air:128000,tiny")
    assert env_models("GLMWEB_MODELS", "glm-5") == [
        {"name": "glm-5", "context_tokens": 200_000, "thinking": True},
        {"name": "glm-4.5-air", "context_tokens": 128_000, "thinking": False},
        {"name": "tiny", "context_tokens": 128_000, "thinking": False},
    ]
    monkeypatch.delenv("GLMWEB_MODELS")
    assert env_models("GLMWEB_MODELS", "glm-5") == [
        {"name": "glm-5", "context_tokens": 128_000, "thinking": True}
    ]
    assert env_models("GLMWEB_MODELS", "gpt-4o")[0]["thinking"] is False


@pytest.mark.parametrize("bad", ["glm-5:lots", "glm-5:1000:think", "glm-4.5-air:1000"])
def test_a_bad_models_variable_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("GLMWEB_MODELS", bad)
    with pytest.raises(ImproperlyConfigured, match="GLMWEB_MODELS"):
        env_models("GLMWEB_MODELS", "glm-5")


def test_thinking_goes_upstream_the_way_glm_expects() -> None:
    on = ChatRequest(model="glm-5", messages=[], thinking=True).body()
    off = ChatRequest(model="glm-5", messages=[], thinking=False).body()
    unset = ChatRequest(model="glm-5", messages=[]).body()
    assert on["thinking"] == {"type": "enabled"}
    assert off["thinking"] == {"type": "disabled"}
    assert "thinking" not in unset
