"""A conversation's settings on the socket: a new chat's first `send` carries them,
they are checked like the panel's, and they reach the upstream request."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation
from tests.conftest import open_socket, use_models

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def two_models(settings: Any, transactional_db: None) -> None:
    settings.UPSTREAM_MODEL = "glm-5"
    use_models(
        {"name": "glm-5", "context_tokens": 200_000, "thinking": True},
        {"name": "glm-4.5-air", "context_tokens": 128_000, "thinking": False},
    )


@database_sync_to_async
def conversation_of(conversation_id: str) -> Conversation:
    return Conversation.objects.get(id=conversation_id)


@database_sync_to_async
def conversation_count() -> int:
    return Conversation.objects.count()


async def test_a_new_chats_settings_create_the_conversation_and_go_upstream(alice, fake) -> None:
    chosen = {
        "model": "glm-5",
        "system_prompt": "Answer in French.",
        "params": {"temperature": 0.3, "stop": ["FIN"], "thinking": False},
    }
    socket = await open_socket(alice)
    events = await socket.turn("Hello", settings=chosen)

    sent = fake.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert (sent["temperature"], sent["stop"]) == (0.3, ["FIN"])
    assert sent["thinking"] == {"type": "disabled"}
    conversation = await conversation_of(events[0]["conversation"])
    assert conversation.system_prompt == "Answer in French."
    assert conversation.params == {"temperature": 0.3, "stop": ["FIN"], "thinking": False}

    # The next turn keeps them; thinking on is sent as GLM expects.
    await database_sync_to_async(Conversation.objects.filter(id=conversation.id).update)(
        params={"thinking": True}
    )
    await socket.turn("Again", conversation=str(conversation.id))
    assert fake.requests[-1]["thinking"] == {"type": "enabled"}
    await socket.close()


async def test_the_model_chosen_writes_the_reply(alice, fake) -> None:
    socket = await open_socket(alice)
    events = await socket.turn("Hello", settings={"model": "glm-4.5-air"})

    assert fake.requests[-1]["model"] == "glm-4.5-air"
    assert "thinking" not in fake.requests[-1]
    assert events[0]["model"] == "glm-4.5-air"
    assert (await conversation_of(events[0]["conversation"])).model == "glm-4.5-air"
    await socket.close()


async def test_a_new_chat_without_settings_takes_the_defaults(alice, fake, settings) -> None:
    settings.GLMWEB_DEFAULT_SYSTEM_PROMPT = "Be kind."
    settings.GLMWEB_DEFAULT_PARAMS = '{"top_p": 0.8}'
    socket = await open_socket(alice)
    await socket.turn("Hello")

    sent = fake.requests[-1]
    assert sent["model"] == "glm-5"
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sent["top_p"] == 0.8
    assert "thinking" not in sent
    await socket.close()


async def test_bad_settings_are_refused_per_field_and_nothing_is_saved(alice, fake) -> None:
    socket = await open_socket(alice)
    await socket.send_message(
        "Hello", settings={"model": "glm-4.5-air", "params": {"thinking": True, "top_p": 4}}
    )
    error = await socket.event()

    assert error["type"] == "error" and error["code"] == "bad_params"
    assert error["fields"] == {
        "top_p": "Top P must be a number from 0 to 1.",
        "thinking": "glm-4.5-air has no thinking switch.",
    }
    assert await conversation_count() == 0
    assert fake.requests == []
    await socket.close()


async def test_thinking_is_never_sent_to_a_model_without_the_switch(alice, fake) -> None:
    socket = await open_socket(alice)
    events = await socket.turn("Hello", settings={"model": "glm-4.5-air"})
    conversation = events[0]["conversation"]
    # Saved before the model lost the switch (older data, a changed GLMWEB_MODELS).
    await database_sync_to_async(Conversation.objects.filter(id=conversation).update)(
        params={"thinking": True}
    )
    await socket.turn("Again", conversation=conversation)
    assert "thinking" not in fake.requests[-1]

    # And a send's params can't turn it on.
    await socket.send_message("More", conversation=conversation, params={"thinking": False})
    error = await socket.event()
    assert error["code"] == "bad_params" and error["fields"] == {
        "thinking": "glm-4.5-air has no thinking switch."
    }
    await socket.close()
