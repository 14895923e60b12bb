"""The settings panel's views: a conversation's settings, presets, and who may touch them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from chat.models import Conversation, Preset
from tests.conftest import use_models

MODELS = [
    {"name": "glm-5", "context_tokens": 200_000, "thinking": True},
    {"name": "glm-4.5-air", "context_tokens": 128_000, "thinking": False},
]
SETTINGS = {
    "model": "glm-5",
    "system_prompt": "Answer in French.",
    "params": {"temperature": 0.4, "stop": ["FIN"], "thinking": False},
}


@pytest.fixture(autouse=True)
def two_models(settings: Any, db: None) -> None:
    settings.UPSTREAM_MODEL = "glm-5"
    use_models(*MODELS)
    settings.GLMWEB_DEFAULT_SYSTEM_PROMPT = "Be kind."
    settings.GLMWEB_DEFAULT_PARAMS = '{"temperature": 0.7}'


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client: Client, url: str, data: object) -> Any:
    return client.post(url, json.dumps(data), content_type="application/json")


@pytest.fixture
def conversation(alice: Any) -> Conversation:
    return Conversation.objects.create(owner=alice, title="Chat", model="glm-5")


def url_of(conversation: Conversation) -> str:
    return f"/c/{conversation.id}/settings/"


def test_the_owner_saves_settings(alice: Any, conversation: Conversation) -> None:
    response = post_json(client_for(alice), url_of(conversation), SETTINGS)
    assert response.status_code == 200
    assert response.json()["settings"] == SETTINGS
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Answer in French."
    assert conversation.params == {"temperature": 0.4, "stop": ["FIN"], "thinking": False}


def test_the_panel_reads_settings_models_presets_and_limits(
    alice: Any, conversation: Conversation
) -> None:
    Preset.objects.create(owner=alice, name="Terse", model="glm-5", params={"max_tokens": 50})
    panel = client_for(alice).get(url_of(conversation)).json()
    assert panel["settings"] == {"model": "glm-5", "system_prompt": "", "params": {}}
    assert panel["models"] == [{**model, "label": model["name"]} for model in MODELS]
    assert [p["name"] for p in panel["presets"]] == ["Terse"]
    assert panel["limits"]["stop_sequences"] == 4


def test_a_new_chat_offers_the_defaults(alice: Any) -> None:
    panel = client_for(alice).get("/settings/").json()
    assert panel["settings"] == {
        "model": "glm-5",
        "system_prompt": "Be kind.",
        "params": {"temperature": 0.7},
    }


def test_bad_settings_answer_a_message_per_field_and_save_nothing(
    alice: Any, conversation: Conversation
) -> None:
    bad = {"model": "glm-4.5-air", "system_prompt": "ok", "params": {"top_p": 3, "thinking": True}}
    response = post_json(client_for(alice), url_of(conversation), bad)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"top_p", "thinking"}
    assert errors["thinking"] == "glm-4.5-air has no thinking switch."
    conversation.refresh_from_db()
    assert (conversation.model, conversation.system_prompt) == ("glm-5", "")


@pytest.mark.parametrize("body", ["not json", "[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_refused(
    alice: Any, conversation: Conversation, body: str
) -> None:
    response = client_for(alice).post(url_of(conversation), body, content_type="application/json")
    assert response.status_code == 400
    assert "settings" in response.json()["errors"]


def test_another_users_conversation_is_not_found(bob: Any, conversation: Conversation) -> None:
    client = client_for(bob)
    assert post_json(client, url_of(conversation), SETTINGS).status_code == 404
    assert client.get(url_of(conversation)).status_code == 404
    conversation.refresh_from_db()
    assert conversation.system_prompt == ""


def test_anonymous_requests_go_to_the_login_page(db: None, conversation: Conversation) -> None:
    response = post_json(Client(), url_of(conversation), SETTINGS)
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_posts_need_the_csrf_token(alice: Any, conversation: Conversation) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert post_json(client, url_of(conversation), SETTINGS).status_code == 403
    assert post_json(client, "/presets/", {"name": "x", "settings": SETTINGS}).status_code == 403


def test_a_preset_is_saved_and_its_name_is_unique_per_user(alice: Any, bob: Any) -> None:
    response = post_json(client_for(alice), "/presets/", {"name": " French ", "settings": SETTINGS})
    assert response.status_code == 201
    preset = response.json()["preset"]
    assert preset["name"] == "French"
    assert preset["settings"] == SETTINGS

    again = post_json(client_for(alice), "/presets/", {"name": "French", "settings": SETTINGS})
    assert again.status_code == 400
    assert again.json()["errors"] == {
        "name": "You already have a preset named “French”. Pick another name."
    }
    # Bob may use the same name for his own.
    bobs = post_json(client_for(bob), "/presets/", {"name": "French", "settings": {}})
    assert bobs.status_code == 201
    assert Preset.objects.filter(owner=alice).count() == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "settings": SETTINGS}, "name"),
        ({"name": "x" * 81, "settings": SETTINGS}, "name"),
        ({"settings": SETTINGS}, "name"),
        ({"name": "Hot", "settings": {"params": {"temperature": 5}}}, "temperature"),
        ({"name": "Hot"}, "settings"),
    ],
)
def test_a_bad_preset_is_refused(alice: Any, data: dict, field: str) -> None:
    response = post_json(client_for(alice), "/presets/", data)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Preset.objects.exists()


def test_only_the_owner_deletes_a_preset(alice: Any, bob: Any) -> None:
    preset = Preset.objects.create(owner=alice, name="Mine")
    assert client_for(bob).post(f"/presets/{preset.id}/delete/").status_code == 404
    assert Preset.objects.filter(id=preset.id).exists()
    response = client_for(alice).post(f"/presets/{preset.id}/delete/")
    assert response.json() == {"deleted": preset.id}
    assert not Preset.objects.exists()
    assert client_for(alice).get(f"/presets/{preset.id}/delete/").status_code == 405


def test_the_page_shows_the_conversations_model(alice: Any, conversation: Conversation) -> None:
    conversation.model = "glm-4.5-air"
    conversation.save()
    page = client_for(alice).get(f"/c/{conversation.id}/").content.decode()
    assert 'id="model-badge"' in page
    assert "glm-4.5-air" in page


def test_a_new_chats_settings_are_checked_but_not_saved(alice: Any) -> None:
    client = client_for(alice)
    good = post_json(client, "/settings/", SETTINGS)
    assert good.status_code == 200 and good.json()["settings"] == SETTINGS
    bad = post_json(client, "/settings/", {"params": {"max_tokens": -1}})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"max_tokens"}
    assert not Conversation.objects.exists()
