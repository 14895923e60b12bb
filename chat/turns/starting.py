"""Starting a turn: a send, regenerate, edit or continue saved, or refused.

Each begin_* function runs on a database thread, in one transaction: it checks
the person's limits, the model (allowed to them, still offered) and the
conversation (not found, already generating, too long), saves the user message
and an empty streaming reply, and returns the ``Turn`` to run (chat.turns.runner).
A refusal (chat.turns.refusals) raises ``TurnRefused``, whose code is the
protocol's error code, before anything of the turn is saved. A resent frame
(same client id) is answered with the turn it already started.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, transaction

from chat import upstream
from chat.models import ChatModel, Conversation, Message
from chat.params import Catalog, InvalidParams, clean_params, clean_settings, default_settings
from chat.turns import heartbeat
from chat.turns.batching import batched
from chat.turns.context import ReplyPlan
from chat.turns.refusals import (
    Rules,
    TurnRefused,  # raised by every begin_*
    check_limits,
    params_for,
    plan_reply,
    refuse_if_message_over_context,
    refuse_if_model_not_allowed,
    refuse_if_over_context,
)
from chat.usage import limits, policy

log = logging.getLogger(__name__)

__all__ = [
    "Turn",
    "TurnRefused",
    "begin_continue",
    "begin_edit",
    "begin_regenerate",
    "begin_send",
    "begin_sends",
    "start_send",
    "switch_branch",
]


@dataclass
class Turn:
    """Everything a turn needs once it runs: finished data, no querysets."""

    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    parent_id: uuid.UUID
    title: str
    model: str
    request: upstream.ChatRequest
    user_message: dict[str, Any] | None
    is_new: bool = True
    # A continued reply: its saved text and usage, which the new text extends.
    prefix_content: str = ""
    prefix_reasoning: str = ""
    prior_usage: upstream.Usage | None = None
    # Earlier messages left out of the request to fit the model's context.
    context_left_out: int = 0

    def start_event(self) -> dict[str, Any]:
        return {
            "type": "start",
            "conversation": str(self.conversation_id),
            "reply": str(self.reply_id),
            "seq": 0,
            "title": self.title,
            "model": self.model,
            "user_message": self.user_message,
            "parent": str(self.parent_id),
            "continued": self.prior_usage is not None,
            "context_left_out": self.context_left_out,
        }


# --- Sends --------------------------------------------------------------------


class Send(NamedTuple):
    """A send frame's arguments: begin_send's, and each call of start_send."""

    user_id: int
    conversation_id: str | None
    content: str
    client_id: str
    params: dict[str, Any]
    # The frame's settings: they replace the conversation's (a new one's defaults).
    chosen: object = None


def begin_send(
    user_id: int,
    conversation_id: str | None,
    content: str,
    client_id: str,
    params: dict[str, Any],
    chosen: object = None,
) -> Turn:
    """Save the user message and an empty reply; answer a resent frame with its turn."""
    return _send_alone(Send(user_id, conversation_id, content, client_id, params, chosen))


def begin_sends(sends: list[tuple[Any, ...]]) -> list[Turn | Exception]:
    """Start several sends (each begin_send's arguments) in one transaction.

    Each one's turn, or the exception that refused or failed it, in order. When
    200 chats start at once, a transaction each spent a third of every start's
    round trips on BEGIN and COMMIT. If any send fails (two copies of a frame
    raced, a lock, a bug), all roll back and each starts on its own, so one
    send's failure stays its own.
    """
    checked = [Send(*send) for send in sends]
    if len(checked) > 1:
        try:
            with transaction.atomic():
                return _outcomes(_send_in_transaction, checked, kept=TurnRefused)
        except Exception:
            log.info("A batch of %d sends failed; starting each alone.", len(sends), exc_info=True)
    return _outcomes(_send_alone, checked, kept=Exception)


# Sends that arrive while the database thread is busy start together.
start_send = batched(begin_sends)


def _outcomes(
    start: Callable[[Send], Turn], sends: list[Send], kept: type[Exception]
) -> list[Turn | Exception]:
    outcomes: dict[int, Turn | Exception] = {}
    # Batches on two workers take row locks in one order: by person, then conversation.
    for index in sorted(range(len(sends)), key=lambda index: _lock_order(sends[index])):
        try:
            outcomes[index] = start(sends[index])
        except kept as error:
            outcomes[index] = error
    return [outcomes[index] for index in range(len(sends))]


def _lock_order(send: Send) -> tuple[int, str]:
    return send.user_id, str(send.conversation_id or "")


def _send_alone(send: Send) -> Turn:
    try:
        with transaction.atomic():
            return _send_in_transaction(send)
    except IntegrityError:
        # Two copies of one frame raced past the lookup: the unique client id
        # let exactly one through, so answer with that one.
        existing = _turn_for_client_id(send.user_id, send.client_id)
        if existing is None:
            raise
        return existing


def _send_in_transaction(send: Send) -> Turn:
    """A send's work, in the caller's transaction.

    A refusal comes before the send's own rows are written. What a check tidied
    on the way (stale replies marked interrupted, a limits row created) stays
    when a batch commits; alone, begin_send rolls it back with the refusal.
    """
    user_id, conversation_id, content, client_id, params, chosen = send
    rules = Rules.of(user_id)
    try:
        cleaned = clean_params(params)
        chosen_settings = None if chosen is None else clean_settings(chosen, rules.catalog)
    except InvalidParams as error:
        raise TurnRefused("bad_params", str(error), error.errors) from None
    existing = _turn_for_client_id(user_id, client_id)
    if existing is not None:
        return existing
    try:
        room = check_limits(user_id, rules)
    except TurnRefused:
        # A copy of this frame may have started while this one waited for the
        # limits row: its turn, now counted, is the answer.
        if (existing := _turn_for_client_id(user_id, client_id)) is not None:
            return existing
        raise
    allowed = policy.allowed_names(user_id, rules.policies)
    if conversation_id is None:
        defaults = default_settings(rules.catalog.only(allowed))
        conversation, history = Conversation.new_for(user_id, content, defaults), []
    else:
        conversation = _lock_conversation(user_id, conversation_id)
        _refuse_if_generating(conversation)
        history = conversation.current_branch()
    if chosen_settings is not None:
        conversation.apply_settings(chosen_settings)
    refuse_if_model_not_allowed(conversation.model, rules.catalog, allowed)
    if cleaned:
        conversation.params = params_for(
            conversation.model, conversation.params, cleaned, rules.catalog
        )
    refuse_if_message_over_context(conversation, history, content, rules.catalog)
    user_message = Message(
        conversation=conversation,
        role=Message.Role.USER,
        content=content,
        client_id=client_id,
        sender_id=user_id if client_id else None,
        parent_id=history[-1].id if history else None,
    )
    plan = plan_reply(conversation, [*history, user_message], rules.catalog, room)
    reply = _new_reply(conversation, user_message, plan)
    conversation.current_leaf_id = reply.id
    # The conversation's current_leaf is checked at COMMIT.
    if conversation_id is None:
        Message.objects.insert_new([user_message, reply], new_conversation=conversation)
    else:
        settings_fields = ["model", "system_prompt", "params"]
        conversation.save(update_fields=[*settings_fields, "current_leaf", "updated_at"])
        Message.objects.insert_new([user_message, reply])
    return _make_turn(conversation, reply, user_message, plan)


# --- Regenerate, edit, continue, switch -----------------------------------------


def begin_regenerate(user_id: int, conversation_id: str, reply_id: str | None = None) -> Turn:
    """Write a new reply beside ``reply_id`` (by default the last reply shown).

    The earlier reply stays as a sibling branch; the new one is shown.
    """
    with transaction.atomic():
        conversation, room, catalog = _lock_for_turn(user_id, conversation_id)
        history = conversation.current_branch()
        if reply_id is not None:
            reply = _message_in(conversation, reply_id, Message.Role.ASSISTANT)
            history = reply.branch_in(list(conversation.messages.all()))[:-1]
        while history and history[-1].role != Message.Role.USER:
            history.pop()
        if not history:
            raise TurnRefused("not_found", "There is no message to answer in this conversation.")
        refuse_if_over_context(
            conversation,
            history,
            catalog,
            "The message to answer",
            "Edit it shorter, or lower max tokens in the settings.",
        )
        plan = plan_reply(conversation, history, catalog, room)
        reply = _new_reply(conversation, history[-1], plan)
        reply.save(force_insert=True)
        conversation.show(reply)
    return _make_turn(conversation, reply, None, plan)


def begin_edit(
    user_id: int, conversation_id: str, message_id: str, content: str, client_id: str
) -> Turn:
    """Save an edited copy of a user message beside it, and start a reply to the copy.

    The original message and everything under it stay as another branch.
    """
    existing = _turn_for_client_id(user_id, client_id)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            conversation, room, catalog = _lock_for_turn(user_id, conversation_id)
            edited = _message_in(conversation, message_id, Message.Role.USER)
            messages = list(conversation.messages.order_by("created_at"))
            parent = next((m for m in messages if m.id == edited.parent_id), None)
            history = parent.branch_in(messages) if parent else []
            refuse_if_message_over_context(conversation, history, content, catalog)
            user_message = conversation.messages.create(
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
                sender_id=user_id if client_id else None,
                parent=parent,
            )
            plan = plan_reply(conversation, [*history, user_message], catalog, room)
            reply = _new_reply(conversation, user_message, plan)
            reply.save(force_insert=True)
            conversation.show(reply)
    except IntegrityError:
        existing = _turn_for_client_id(user_id, client_id)
        if existing is None:
            raise
        return existing
    return _make_turn(conversation, reply, user_message, plan)


def begin_continue(user_id: int, conversation_id: str, reply_id: str) -> Turn:
    """Stream more of a reply cut at the length limit into the same message.

    The request is the branch up to and including the partial reply; the new
    text is appended to it (see ``Turn.prefix_content``).
    """
    with transaction.atomic():
        conversation, room, catalog = _lock_for_turn(user_id, conversation_id)
        reply = _message_in(conversation, reply_id, Message.Role.ASSISTANT)
        if not reply.can_continue():
            raise TurnRefused(
                "cannot_continue", "Only the last reply, cut at the length limit, can be continued."
            )
        history = reply.branch_in(list(conversation.messages.all()))
        refuse_if_over_context(
            conversation,
            history,
            catalog,
            "The message and its reply so far",
            "Lower max tokens in the settings, or ask for the rest in a new message.",
        )
        prior = upstream.Usage(
            reply.prompt_tokens or 0, reply.completion_tokens or 0, reply.total_tokens or 0
        )
        plan = plan_reply(conversation, history, catalog, room)
        reply.resume_streaming(
            context_left_out=plan.context.left_out, reserved_tokens=plan.reserved_tokens
        )
        conversation.show(reply)
    turn = _make_turn(conversation, reply, None, plan)
    turn.prefix_content = reply.content
    turn.prefix_reasoning = reply.reasoning
    turn.prior_usage = prior
    return turn


def switch_branch(user_id: int, conversation_id: str, leaf_id: str) -> str:
    """Show the branch through ``leaf_id``; returns the leaf actually shown."""
    with transaction.atomic():
        conversation = _lock_conversation(user_id, conversation_id)
        _refuse_if_generating(conversation)
        conversation.current_leaf = _message_in(conversation, leaf_id, None)
        leaf = conversation.shown_branch(list(conversation.messages.all()))[-1]
        conversation.current_leaf = leaf
        conversation.save(update_fields=["current_leaf"])
        return str(leaf.id)


# --- Checks ---------------------------------------------------------------------


def _lock_for_turn(user_id: int, conversation_id: str) -> tuple[Conversation, limits.Room, Catalog]:
    rules = Rules.of(user_id)
    room = check_limits(user_id, rules)
    conversation = _lock_conversation(user_id, conversation_id)
    _refuse_if_generating(conversation)
    allowed = policy.allowed_names(user_id, rules.policies)
    refuse_if_model_not_allowed(conversation.model, rules.catalog, allowed)
    return conversation, room, rules.catalog


def _message_in(conversation: Conversation, message_id: str, role: str | None) -> Message:
    if not _is_uuid(message_id):
        raise TurnRefused("not_found", "That message doesn't exist.")
    found = conversation.messages.filter(id=message_id)
    if role is not None:
        found = found.filter(role=role)
    message = found.first()
    if message is None:
        raise TurnRefused("not_found", "That message doesn't exist.")
    return message


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _lock_conversation(user_id: int, conversation_id: str) -> Conversation:
    # The row lock serialises concurrent sends into one conversation, so the
    # "already generating" check below can't be raced (PostgreSQL; SQLite's
    # IMMEDIATE transactions serialise all writers anyway).
    try:
        return Conversation.objects.select_for_update().get(id=conversation_id, owner_id=user_id)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise TurnRefused("not_found", "That conversation doesn't exist.") from None


def _refuse_if_generating(conversation: Conversation) -> None:
    streaming = list(conversation.messages.streaming().values_list("id", "worker", "updated_at"))
    if not streaming:
        return
    # Stale, or its worker's heartbeat stopped: a killed worker's reply.
    stale = heartbeat.abandoned(streaming)
    Message.objects.filter(id__in=stale).mark_interrupted()
    if len(stale) < len(streaming):
        raise TurnRefused("busy", "A reply is already being generated in this conversation.")


def _new_reply(conversation: Conversation, parent: Message, plan: ReplyPlan) -> Message:
    return Message.new_reply(
        conversation,
        parent,
        context_left_out=plan.context.left_out,
        reserved_tokens=plan.reserved_tokens,
    )


# --- The turn -------------------------------------------------------------------


def _turn_for_client_id(user_id: int, client_id: str) -> Turn | None:
    if not _client_id_used(user_id, client_id):  # almost every frame
        return None
    sent = Message.objects.filter(sender_id=user_id, client_id=client_id)
    user_message = sent.select_related("conversation").first()
    if user_message is None:
        return None
    reply = user_message.children.order_by("created_at").first()
    if reply is None:
        return None
    conversation = user_message.conversation
    plan = plan_reply(conversation, [user_message], ChatModel.objects.catalog(), None)
    turn = _make_turn(conversation, reply, user_message, plan)
    turn.is_new = False
    turn.context_left_out = reply.context_left_out
    return turn


def _client_id_used(user_id: int, client_id: str) -> bool:
    # Raw SQL: it runs before every send, and the ORM spends ten times the
    # query's own cost building it. The unique (sender, client_id) index answers it.
    message = Message._meta
    sql = f"SELECT 1 FROM {message.db_table} WHERE sender_id = %s AND client_id = %s LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, client_id])
        return cursor.fetchone() is not None


def _make_turn(
    conversation: Conversation, reply: Message, user_message: Message | None, plan: ReplyPlan
) -> Turn:
    assert reply.parent_id is not None  # a reply answers a message
    return Turn(
        conversation_id=conversation.id,
        reply_id=reply.id,
        parent_id=reply.parent_id,
        title=str(conversation),
        model=reply.model,
        request=plan.request,
        context_left_out=plan.context.left_out,
        user_message=None
        if user_message is None
        else {
            "id": str(user_message.id),
            "content": user_message.content,
            "client_id": user_message.client_id,
            "parent": str(user_message.parent_id) if user_message.parent_id else None,
            "created_at": user_message.created_at.isoformat(),
        },
    )
