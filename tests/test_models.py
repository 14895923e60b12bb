"""Message.objects.insert_new saves what the ORM would have saved."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def saved(row: Any) -> dict[str, Any]:
    fresh = type(row).objects.get(pk=row.pk)
    fields = fresh._meta.concrete_fields
    return {field.attname: getattr(fresh, field.attname) for field in fields if field.name != "id"}


def test_inserted_rows_read_back_as_the_orm_saves_them(alice: Any) -> None:
    by_orm = Conversation.objects.create(
        owner=alice, title="Plans", model="glm-5", params={"temperature": 0.3, "stop": ["\n"]}
    )
    by_insert = Conversation(
        owner=alice, title="Plans", model="glm-5", params={"temperature": 0.3, "stop": ["\n"]}
    )
    question, answer = (
        Message(conversation=by_insert, role="user", content="Hi ünïcode", client_id="c1"),
        Message(conversation=by_insert, role="assistant", status="streaming", worker="w1"),
    )
    answer.parent = question
    # On PostgreSQL, one round trip.
    Message.objects.insert_new([question, answer], new_conversation=by_insert)

    assert not by_insert._state.adding
    conversation = saved(by_insert)
    assert conversation.pop("created_at") is not None
    assert conversation.pop("updated_at") is not None
    expected = saved(by_orm)
    del expected["created_at"], expected["updated_at"]
    assert conversation == expected
    assert saved(question)["content"] == "Hi ünïcode"
    assert saved(answer)["parent_id"] == question.pk
    assert list(by_insert.messages.order_by("created_at")) == [question, answer]
