"""Export (Markdown, our JSON, all of one's data) and import (ours, ChatGPT's):
all or nothing, with a clear error for a file we can't read."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, DailyUsage, Message
from chat.usage import ledger as usage
from chat.web.exporting import CONVERSATION_FORMAT
from chat.web.transcript import visible_branch

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_branched(owner) -> Conversation:
    """A question answered twice (two branches), the second answer shown."""
    conversation = Conversation.objects.create(
        owner=owner,
        title="Tides",
        model="glm-5",
        system_prompt="Be brief.",
        params={"temperature": 0.5},
    )
    question = conversation.messages.create(role="user", content="Why are there tides?")
    conversation.messages.create(
        role="assistant", content="The Moon.", parent=question, total_tokens=20, prompt_tokens=8
    )
    second = conversation.messages.create(
        role="assistant",
        content="The Moon's **gravity**.",
        reasoning="Keep it short.",
        parent=question,
        total_tokens=30,
    )
    conversation.current_leaf = second
    conversation.save()
    return conversation


def upload(client: Client, payload: object, name: str = "conversations.json"):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(reverse("chat:import"), {"file": SimpleUploadedFile(name, raw)})


def chatgpt_export() -> list[dict]:
    """Two conversations in ChatGPT's format: a system node, an edited question
    (two branches), a tool call and an image part to skip."""

    def node(key, parent, children, role=None, text=None, content_type="text", at=1.7e9):
        message = None
        if role is not None:
            message = {
                "id": key,
                "author": {"role": role},
                "create_time": at,
                "content": {"content_type": content_type, "parts": [text] if text else []},
            }
        return key, {"id": key, "message": message, "parent": parent, "children": children}

    first = dict(
        [
            node("root", None, ["sys"]),
            node("sys", "root", ["q1", "q1b"], "system", "You are ChatGPT."),
            node("q1", "sys", ["a1"], "user", "Plan a trip to Porto", at=1.7e9 + 1),
            node("a1", "q1", [], "assistant", "Day 1: Ribeira.", at=1.7e9 + 2),
            node("q1b", "sys", ["tool"], "user", "Plan a trip to Braga", at=1.7e9 + 3),
            node("tool", "q1b", ["a1b"], "tool", "search results", at=1.7e9 + 4),
            node("a1b", "tool", ["img"], "assistant", "Day 1: Bom Jesus.", at=1.7e9 + 5),
            node("img", "a1b", [], "user", None, content_type="multimodal_text", at=1.7e9 + 6),
        ]
    )
    second = dict(
        [
            node("r", None, ["u"]),
            node("u", "r", ["a"], "user", "Hello"),
            node("a", "u", [], "assistant", "Hi!"),
        ]
    )
    return [
        {"title": "Portugal trip", "create_time": 1.7e9, "update_time": 1.7e9 + 6,
         "mapping": first, "current_node": "img"},
        {"title": "Greeting", "create_time": 1.6e9, "update_time": 1.6e9, "mapping": second,
         "current_node": "a"},
    ]  # fmt: skip


# --- Export ---------------------------------------------------------------------------


def test_json_export_has_the_whole_tree(alice) -> None:
    conversation = make_branched(alice)
    response = logged_in(alice).get(reverse("chat:export_json", args=[conversation.id]))

    assert response["Content-Disposition"] == 'attachment; filename="tides.json"'
    data = response.json()
    assert data["format"] == CONVERSATION_FORMAT
    assert (data["title"], data["system_prompt"], data["params"]) == (
        "Tides",
        "Be brief.",
        {"temperature": 0.5},
    )
    question, first, second = data["messages"]
    assert first["parent"] == second["parent"] == question["id"]
    assert data["current_leaf"] == second["id"]
    assert second["reasoning"] == "Keep it short."
    assert first["usage"]["total_tokens"] == 20 and first["created_at"]


def test_markdown_export_is_the_branch_shown(alice) -> None:
    conversation = make_branched(alice)
    response = logged_in(alice).get(reverse("chat:export_md", args=[conversation.id]))

    text = response.content.decode()
    assert response["Content-Type"].startswith("text/markdown")
    assert text.startswith("# Tides\n")
    assert "## You\n\nWhy are there tides?" in text
    assert "The Moon's **gravity**." in text and "The Moon.\n" not in text
    assert "> Keep it short." in text


def test_download_all_is_one_json_file_with_every_conversation(alice, bob) -> None:
    make_branched(alice)
    Conversation.objects.create(owner=alice, title="Empty", model="glm-5")
    make_branched(bob)

    response = logged_in(alice).get(reverse("chat:export_account"))

    assert "attachment" in response["Content-Disposition"]
    data = json.loads(b"".join(response.streaming_content))
    assert data["account"]["username"] == "alice"
    assert sorted(c["title"] for c in data["conversations"]) == ["Empty", "Tides"]
    assert sum(len(c["messages"]) for c in data["conversations"]) == 3


# --- Import ---------------------------------------------------------------------------


def test_our_export_imports_back_with_its_branches(alice, bob) -> None:
    exported = logged_in(alice).get(reverse("chat:export_json", args=[make_branched(alice).id]))

    response = upload(logged_in(bob), exported.json(), "tides.json")

    assert response.json()["imported"] == 1
    copy = Conversation.objects.get(owner=bob)
    assert (copy.title, copy.system_prompt, copy.params) == (
        "Tides",
        "Be brief.",
        {"temperature": 0.5},
    )
    assert [m.content for m in visible_branch(copy)] == [
        "Why are there tides?",
        "The Moon's **gravity**.",
    ]
    assert copy.messages.filter(parent__isnull=False).count() == 2
    # Tokens spent elsewhere aren't counted here.
    assert not copy.messages.filter(total_tokens__isnull=False).exists()


def test_a_chatgpt_export_imports_user_and_assistant_text_keeping_the_tree(alice) -> None:
    response = upload(logged_in(alice), chatgpt_export())

    assert response.status_code == 200
    assert response.json()["imported"] == 2
    trip = Conversation.objects.get(title="Portugal trip")
    messages = list(trip.messages.order_by("created_at"))
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Plan a trip to Porto"),
        ("assistant", "Day 1: Ribeira."),
        ("user", "Plan a trip to Braga"),
        ("assistant", "Day 1: Bom Jesus."),
    ]
    porto, ribeira, braga, bom_jesus = messages
    assert porto.parent is None and braga.parent is None  # the system node is gone
    assert ribeira.parent == porto and bom_jesus.parent == braga  # the tool node too
    assert trip.current_leaf == bom_jesus  # the image node's kept ancestor
    assert [m.content for m in visible_branch(trip)][-1] == "Day 1: Bom Jesus."
    assert trip.created_at.timestamp() == 1.7e9
    greeting = Conversation.objects.get(title="Greeting")
    assert greeting.updated_at < trip.updated_at


def test_importing_twice_makes_two_copies(alice) -> None:
    client = logged_in(alice)
    upload(client, chatgpt_export())
    upload(client, chatgpt_export())
    assert Conversation.objects.filter(owner=alice).count() == 4


def test_an_account_download_imports_back(alice, bob) -> None:
    make_branched(alice)
    data = b"".join(logged_in(alice).get(reverse("chat:export_account")).streaming_content)

    assert upload(logged_in(bob), data).json()["imported"] == 1


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe not utf-8", "isn't UTF-8"),
        (b"{not json", "isn't valid JSON"),
        ({"hello": "world"}, "isn't a conversation file we know"),
        ([], "has no conversations"),
        ({"format": CONVERSATION_FORMAT, "messages": "nope"}, "no “messages” list"),
        (
            {"format": CONVERSATION_FORMAT, "messages": [{"id": "a", "role": "system"}]},
            "only user and assistant",
        ),
        (
            {
                "format": CONVERSATION_FORMAT,
                "messages": [{"id": "a", "role": "user", "parent": "zz"}],
            },
            "isn't in the file",
        ),
        (
            {
                "format": CONVERSATION_FORMAT,
                "messages": [
                    {"id": "a", "role": "user", "parent": "b", "content": "x"},
                    {"id": "b", "role": "assistant", "parent": "a", "content": "y"},
                ],
            },
            "loop",
        ),
        (
            {"format": CONVERSATION_FORMAT, "params": {"temperature": 9}, "messages": []},
            "Temperature",
        ),
        ([{"title": "x", "mapping": []}], "“mapping” must be an object"),
    ],
)
def test_a_malformed_file_is_refused_with_a_clear_error(alice, payload, error) -> None:
    response = upload(logged_in(alice), payload)

    assert response.status_code == 400
    assert error in response.json()["error"]
    assert not Conversation.objects.exists()


def test_nothing_is_half_imported(alice) -> None:
    good = chatgpt_export()
    broken = {"title": "Broken", "mapping": {"n": {"message": "not an object", "parent": None}}}

    response = upload(logged_in(alice), [*good, broken])

    assert response.status_code == 400 and "Conversation 3" in response.json()["error"]
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_a_file_over_the_size_limit_is_refused(alice, settings) -> None:
    settings.GLMWEB_IMPORT_MAX_BYTES = 1000
    response = upload(logged_in(alice), b" " * 1001)

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert not Conversation.objects.exists()


def test_import_needs_a_file_and_a_login(alice, client) -> None:
    assert (
        logged_in(alice).post(reverse("chat:import")).json()["error"] == "Choose a file to import."
    )
    assert client.post(reverse("chat:import")).status_code == 302


def test_imports_leave_the_usage_ledger_alone(alice) -> None:
    upload(logged_in(alice), chatgpt_export())
    usage.rebuild_ledger()
    assert not DailyUsage.objects.exists()
