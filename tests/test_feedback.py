"""Thumbs up or down and a comment on a reply: saved for its owner only, shown to admins."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from tests.servers import transcript_in

pytestmark = pytest.mark.django_db


def make_reply(owner) -> Message:
    conversation = Conversation.objects.create(owner=owner, title="Rated", model="glm-5")
    question = conversation.messages.create(role="user", content="Is it good?")
    return conversation.messages.create(
        role="assistant", content="It is.", parent=question, total_tokens=5
    )


def feedback_url(message: Message) -> str:
    return reverse("chat:feedback", args=[message.conversation_id, message.id])


def post(client: Client, message: Message, payload: object) -> object:
    return client.post(feedback_url(message), json.dumps(payload), content_type="application/json")


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_a_rating_and_comment_are_saved_and_can_be_taken_back(alice) -> None:
    reply = make_reply(alice)
    client = logged_in(alice)

    response = post(client, reply, {"rating": -1, "comment": "  Too vague.  "})

    assert response.status_code == 200
    assert response.json() == {"rating": -1, "comment": "Too vague."}
    reply.refresh_from_db()
    assert (reply.rating, reply.feedback_comment) == (-1, "Too vague.")
    assert reply.feedback_at is not None

    assert post(client, reply, {"rating": None, "comment": ""}).status_code == 200
    reply.refresh_from_db()
    assert (reply.rating, reply.feedback_comment, reply.feedback_at) == (None, "", None)


@pytest.mark.parametrize(
    "payload",
    [
        {"rating": 2},
        {"rating": True},
        {"rating": "1"},
        {"rating": 1, "comment": 5},
        {"rating": 1, "comment": "x" * 2001},
        ["rating", 1],
    ],
)
def test_bad_feedback_is_refused_with_a_reason_and_saves_nothing(alice, payload) -> None:
    reply = make_reply(alice)

    response = post(logged_in(alice), reply, payload)

    assert response.status_code == 400
    assert response.json()["error"]
    reply.refresh_from_db()
    assert reply.rating is None and reply.feedback_comment == ""


def test_not_json_is_refused(alice) -> None:
    reply = make_reply(alice)
    response = logged_in(alice).post(feedback_url(reply), "rating=1", content_type="text/plain")
    assert response.status_code == 400


def test_another_users_reply_is_not_found(alice, bob) -> None:
    reply = make_reply(alice)

    response = post(logged_in(bob), reply, {"rating": -1})

    assert response.status_code == 404
    reply.refresh_from_db()
    assert reply.rating is None


def test_a_user_message_cannot_be_rated(alice) -> None:
    reply = make_reply(alice)
    question = reply.parent
    assert post(logged_in(alice), question, {"rating": 1}).status_code == 404


def test_feedback_needs_a_login_a_post_and_the_csrf_token(alice, client) -> None:
    reply = make_reply(alice)
    assert post(client, reply, {"rating": 1}).status_code == 302  # to the login page
    assert logged_in(alice).get(feedback_url(reply)).status_code == 405

    strict = logged_in(alice, enforce_csrf_checks=True)
    assert post(strict, reply, {"rating": 1}).status_code == 403
    reply.refresh_from_db()
    assert reply.rating is None


def test_the_chat_page_hands_the_rating_to_the_script(alice) -> None:
    reply = make_reply(alice)
    post(logged_in(alice), reply, {"rating": 1, "comment": "Spot on"})

    page = logged_in(alice).get(reverse("chat:conversation", args=[reply.conversation_id]))
    item = transcript_in(page.content.decode())[-1]
    assert (item["rating"], item["feedback_comment"]) == (1, "Spot on")


def test_admins_find_rated_replies_and_read_the_comment(admin_client, alice) -> None:
    rated = make_reply(alice)
    make_reply(alice)  # an unrated conversation
    post(logged_in(alice), rated, {"rating": -1, "comment": "Wrong <b>facts</b>"})
    changelist = reverse("admin:chat_conversation_changelist")

    listing = admin_client.get(changelist, {"rating": "-1"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [rated.conversation]
    assert "0 up · 1 down" in listing.content.decode()
    assert len(admin_client.get(changelist, {"rating": "any"}).context["cl"].result_list) == 1
    assert len(admin_client.get(changelist).context["cl"].result_list) == 2

    review = admin_client.get(
        reverse("admin:chat_conversation_change", args=[rated.conversation_id])
    ).content.decode()
    assert "rated thumbs down" in review
    assert "Wrong &lt;b&gt;facts&lt;/b&gt;" in review
