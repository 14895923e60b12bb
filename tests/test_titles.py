"""Generated titles: after the first reply, a short non-streamed request names the
conversation; failures keep the first-message title; the tokens count in usage."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from bench.fake_upstream import Scenario
from chat.models import Conversation, DailyUsage, Message
from chat.turns import titles
from chat.usage import ledger as usage
from tests.conftest import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def generated_titles(settings: Any) -> None:
    settings.GLMWEB_GENERATED_TITLES = True
    settings.GLMWEB_TITLE_TIMEOUT_SECONDS = 5.0


@database_sync_to_async
def conversation(conversation_id: str) -> Conversation:
    return Conversation.objects.get(id=conversation_id)


@database_sync_to_async
def ledger_tokens() -> tuple[int, int, int]:
    rows = list(DailyUsage.objects.all())
    return (
        sum(r.prompt_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum(r.replies for r in rows),
    )


@database_sync_to_async
def first_exchange(owner: Any, question: str, answer: str) -> tuple[Conversation, Message]:
    conv = Conversation.objects.create(owner=owner, title=question[:60], model="glm-5")
    asked = conv.messages.create(role="user", content=question)
    reply = conv.messages.create(role="assistant", content=answer, parent=asked)
    return conv, reply


async def test_the_first_reply_gets_a_generated_title_live(alice, fake) -> None:
    fake.enqueue(Scenario(), Scenario(text='**Title:** "Weekend in Lisbon."', reasoning_tokens=0))
    socket = await open_socket(alice)

    events = await socket.turn("What should I see in Lisbon over a weekend?")
    assert events[0]["title"] == "What should I see in Lisbon over a weekend?"
    (title,) = await socket.until("title")

    conversation_id = events[0]["conversation"]
    assert title == {"type": "title", "conversation": conversation_id, "title": "Weekend in Lisbon"}
    saved = await conversation(conversation_id)
    assert (saved.title, saved.title_source) == ("Weekend in Lisbon", "model")
    request = fake.requests[1]
    assert "stream" not in request
    assert request["messages"][0]["content"] == "What should I see in Lisbon over a weekend?"
    assert request["messages"][-1]["content"] == titles.INSTRUCTION
    assert saved.title_prompt_tokens and saved.title_completion_tokens
    await socket.close()


async def test_title_tokens_count_in_the_ledger_and_its_rebuild(alice, fake) -> None:
    fake.enqueue(Scenario(), Scenario(text="Cheese pairings", reasoning_tokens=0))
    socket = await open_socket(alice)
    events = await socket.turn("Which wine goes with comté?")
    await socket.until("title")
    await socket.close()

    saved = await conversation(events[0]["conversation"])
    reply_usage = events[-1]["usage"]
    prompt, completion, replies = await ledger_tokens()
    assert prompt == reply_usage["prompt_tokens"] + saved.title_prompt_tokens
    assert completion == reply_usage["completion_tokens"] + saved.title_completion_tokens
    assert replies == 1

    await database_sync_to_async(usage.rebuild_ledger)()
    assert await ledger_tokens() == (prompt, completion, replies)


async def test_only_the_first_reply_asks_for_a_title(alice, fake) -> None:
    socket = await open_socket(alice)
    first = await socket.turn("Hello")
    await socket.until("title")
    await socket.turn("And again", conversation=first[0]["conversation"])
    await titles.wait_for_titles()

    assert len(fake.requests) == 3
    assert all(r.get("stream") for r in (fake.requests[0], fake.requests[2]))
    assert await socket.nothing_more()
    await socket.close()


@pytest.mark.parametrize(
    "failure",
    [Scenario(status=401), Scenario(text="   "), Scenario(text="!!!"), Scenario(first_delay=3)],
    ids=["error", "empty", "no-words", "timeout"],
)
async def test_a_failed_title_keeps_the_first_message_title(alice, fake, settings, failure) -> None:
    settings.GLMWEB_TITLE_TIMEOUT_SECONDS = 0.5
    fake.enqueue(Scenario(), failure)
    socket = await open_socket(alice)

    events = await socket.turn("Explain  quantum\ntunnelling simply")
    await titles.wait_for_titles()

    saved = await conversation(events[0]["conversation"])
    assert (saved.title, saved.title_source) == ("Explain quantum tunnelling simply", "message")
    assert len(fake.requests) == 2
    assert await socket.nothing_more()
    await socket.close()


async def test_a_title_the_owner_set_is_never_replaced(alice, fake) -> None:
    conv, reply = await first_exchange(alice, "Question", "Answer")
    await database_sync_to_async(Conversation.objects.filter(id=conv.id).update)(
        title="Mine", title_source="user"
    )

    await titles.generate_title(conv.id, reply.id)

    assert fake.requests == []
    assert (await conversation(str(conv.id))).title == "Mine"


async def test_a_rename_while_the_title_is_asked_for_wins(alice, fake) -> None:
    conv, reply = await first_exchange(alice, "Question", "Answer")
    request = await database_sync_to_async(titles.title_request)(conv.id, reply.id)
    assert request is not None
    await database_sync_to_async(Conversation.objects.filter(id=conv.id).update)(
        title="Renamed meanwhile", title_source="user"
    )

    saved = await database_sync_to_async(titles.save_title)(
        conv.id, "Model title", titles.upstream.Usage(10, 3, 13)
    )

    assert saved is None
    after = await conversation(str(conv.id))
    assert after.title == "Renamed meanwhile"
    assert (after.title_prompt_tokens, after.title_completion_tokens) == (10, 3)
    assert (await ledger_tokens())[:2] == (10, 3)


async def test_the_demo_model_names_conversations_offline(alice, settings) -> None:
    settings.GLMWEB_DEMO_MODEL = True
    conv, reply = await first_exchange(alice, "how do rainbows form, really?", "Light…")

    await titles.generate_title(conv.id, reply.id)

    after = await conversation(str(conv.id))
    assert (after.title, after.title_source) == ("How do rainbows form really", "model")


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Paris Trip", "Paris Trip"),
        ('"Paris Trip"', "Paris Trip"),
        ("Title: Paris Trip.", "Paris Trip"),
        ("**Title:** *Paris* `Trip`", "Paris Trip"),
        ("# Paris Trip\n\nHere is why…", "Paris Trip"),
        ("<think>hmm</think>\n“Paris Trip”", "Paris Trip"),
        ("«Voyage à Paris»", "Voyage à Paris"),
        ("", ""),
        ("\n\n", ""),
        ("...", ""),
        ("word " * 100, ""),
    ],
)
def test_clean_title(answer: str, title: str) -> None:
    assert titles.clean_title(answer) == title


def test_clean_title_keeps_it_short() -> None:
    cleaned = titles.clean_title(
        "A rather long title that goes on and on about many different things"
    )
    assert len(cleaned) <= titles.TITLE_CHARS
    assert cleaned.endswith("…")
