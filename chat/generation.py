"""One chat turn, from a user's send to the saved reply.

A turn runs in its own task, apart from the socket that asked for it: closing
the tab doesn't stop it, only Stop (from any socket, on any worker) or a
limit does. It speaks to sockets through the channel layer:

- ``conversation_group``: every socket showing the conversation receives the
  numbered events (``start``, ``delta``, ``done``/``error``);
- ``control_group``: the running turn receives ``stop`` and snapshot requests.

The database sees the user message and an empty reply at the start, a
checkpoint of the text at most every few seconds, and the final reply: never a
write per token, never a synchronous query inside the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from chat import demo, heartbeat, limits, relay, titles, upstream, usage
from chat.db import batched, database_call
from chat.models import Conversation, Message, clean_title, insert_new
from chat.params import (
    ConversationSettings,
    InvalidParams,
    clean_params,
    clean_settings,
    context_tokens,
    default_settings,
    model_named,
)

log = logging.getLogger(__name__)

TITLE_CHARS = 60


class TurnRefused(Exception):
    """A send or regenerate that can't start; ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # For bad settings: each wrong field and what it may be.
        self.fields = fields


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"conv.{uuid.UUID(str(conversation_id)).hex}"


def control_group(conversation_id: uuid.UUID | str) -> str:
    return f"ctl.{uuid.UUID(str(conversation_id)).hex}"


# --- Starting a turn (database side, sync) ------------------------------------


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


def begin_send(
    user_id: int,
    conversation_id: str | None,
    content: str,
    client_id: str,
    params: dict[str, Any],
    chosen: object = None,
) -> Turn:
    """Save the user message and an empty reply; answer a resent frame with its turn.

    ``chosen`` (the frame's ``settings``) replaces the conversation's settings;
    a new conversation without them takes the defaults.
    """
    try:
        with transaction.atomic():
            return _send_in_transaction(
                user_id, conversation_id, content, client_id, params, chosen
            )
    except IntegrityError:
        # Two copies of one frame raced past the lookup: the unique client id
        # let exactly one through, so answer with that one.
        existing = _turn_for_client_id(user_id, client_id)
        if existing is None:
            raise
        return existing


def begin_sends(sends: list[tuple[Any, ...]]) -> list[Turn | Exception]:
    """Start several sends (each begin_send's arguments) in one transaction.

    Each one's turn, or the exception that refused or failed it, in order. When
    200 chats start at once, a transaction each spent a third of every start's
    round trips on BEGIN and COMMIT. If any send fails (two copies of a frame
    raced, a lock, a bug), all roll back and each starts on its own, so one
    send's failure stays its own.
    """
    if len(sends) > 1:
        try:
            with transaction.atomic():
                return _outcomes(_send_in_transaction, sends, kept=TurnRefused)
        except Exception:
            log.info("A batch of %d sends failed; starting each alone.", len(sends), exc_info=True)
    return _outcomes(begin_send, sends, kept=Exception)


def _outcomes(
    start: Callable[..., Turn], sends: list[tuple[Any, ...]], kept: type[Exception]
) -> list[Turn | Exception]:
    outcomes: list[Any] = [None] * len(sends)
    # Batches on two threads or workers take row locks in one order: by person,
    # then conversation.
    for index in sorted(range(len(sends)), key=lambda index: _lock_order(sends[index])):
        try:
            outcomes[index] = start(*sends[index])
        except kept as error:
            outcomes[index] = error
    return outcomes


def _lock_order(send: tuple[Any, ...]) -> tuple[int, str]:
    user_id, conversation_id = send[:2]
    return user_id, str(conversation_id or "")


def _send_in_transaction(*send: Any) -> Turn:
    """begin_send's work (its arguments), in the caller's transaction.

    A refusal comes before the send's own rows are written. What a check tidied
    on the way (stale replies marked interrupted, a limits row created) stays
    when a batch commits; alone, begin_send rolls it back with the refusal.
    """
    user_id, conversation_id, content, client_id, params, chosen = (*send, None)[:6]
    try:
        cleaned = clean_params(params)
        chosen_settings = None if chosen is None else clean_settings(chosen)
    except InvalidParams as error:
        raise TurnRefused("bad_params", str(error), error.errors) from None
    existing = _turn_for_client_id(user_id, client_id)
    if existing is not None:
        return existing
    try:
        window = _check_limits(user_id)
    except TurnRefused:
        # A copy of this frame may have started while this one waited for the
        # limits row: its turn, now counted, is the answer.
        if (existing := _turn_for_client_id(user_id, client_id)) is not None:
            return existing
        raise
    if conversation_id is None:
        conversation, history = _new_conversation(user_id, content), []
    else:
        conversation = _lock_conversation(user_id, conversation_id)
        _refuse_if_generating(conversation)
        history = _current_branch(conversation)
    if chosen_settings is not None:
        apply_settings(conversation, chosen_settings)
    if cleaned:
        conversation.params = _params_for(conversation.model, conversation.params, cleaned)
    _refuse_if_message_over_context(conversation, history, content)
    user_message = Message(
        conversation=conversation,
        role=Message.Role.USER,
        content=content,
        client_id=client_id,
        sender_id=user_id if client_id else None,
        parent_id=history[-1].id if history else None,
    )
    plan = _plan_reply(conversation, [*history, user_message], window)
    reply = _new_reply(conversation, user_message, plan)
    conversation.current_leaf_id = reply.id
    # The conversation's current_leaf is checked at COMMIT.
    if conversation_id is None:
        insert_new([conversation], [user_message, reply])
    else:
        settings_fields = ["model", "system_prompt", "params"]
        conversation.save(update_fields=[*settings_fields, "current_leaf", "updated_at"])
        insert_new([user_message, reply])
    return _make_turn(conversation, reply, user_message, plan)


# Sends that arrive while the database threads are busy start together.
start_send = batched(begin_sends)


def begin_regenerate(user_id: int, conversation_id: str, reply_id: str | None = None) -> Turn:
    """Write a new reply beside ``reply_id`` (by default the last reply shown).

    The earlier reply stays as a sibling branch; the new one is shown.
    """
    with transaction.atomic():
        conversation, window = _lock_for_turn(user_id, conversation_id)
        history = _current_branch(conversation)
        if reply_id is not None:
            reply = _message_in(conversation, reply_id, Message.Role.ASSISTANT)
            history = branch_ending_at(reply, list(conversation.messages.all()))[:-1]
        while history and history[-1].role != Message.Role.USER:
            history.pop()
        if not history:
            raise TurnRefused("not_found", "There is no message to answer in this conversation.")
        _refuse_if_over_context(
            conversation,
            history,
            "The message to answer",
            "Edit it shorter, or lower max tokens in the settings.",
        )
        plan = _plan_reply(conversation, history, window)
        reply = _create_reply(conversation, history[-1], plan)
        _show(conversation, reply)
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
            conversation, window = _lock_for_turn(user_id, conversation_id)
            edited = _message_in(conversation, message_id, Message.Role.USER)
            messages = list(conversation.messages.order_by("created_at"))
            parent = next((m for m in messages if m.id == edited.parent_id), None)
            history = branch_ending_at(parent, messages) if parent else []
            _refuse_if_message_over_context(conversation, history, content)
            user_message = conversation.messages.create(
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
                sender_id=user_id if client_id else None,
                parent=parent,
            )
            plan = _plan_reply(conversation, [*history, user_message], window)
            reply = _create_reply(conversation, user_message, plan)
            _show(conversation, reply)
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
        conversation, window = _lock_for_turn(user_id, conversation_id)
        reply = _message_in(conversation, reply_id, Message.Role.ASSISTANT)
        if reply.finish_reason != "length" or reply.children.exists():
            raise TurnRefused(
                "cannot_continue", "Only the last reply, cut at the length limit, can be continued."
            )
        history = branch_ending_at(reply, list(conversation.messages.all()))
        _refuse_if_over_context(
            conversation,
            history,
            "The message and its reply so far",
            "Lower max tokens in the settings, or ask for the rest in a new message.",
        )
        prior = upstream.Usage(
            reply.prompt_tokens or 0, reply.completion_tokens or 0, reply.total_tokens or 0
        )
        plan = _plan_reply(conversation, history, window)
        reply.status = Message.Status.STREAMING
        reply.finish_reason = ""
        reply.worker = settings.GLMWEB_WORKER_ID
        reply.context_left_out, reply.reserved_tokens = plan.context.left_out, plan.reserved_tokens
        reply.save(
            update_fields=[
                "status",
                "finish_reason",
                "worker",
                "context_left_out",
                "reserved_tokens",
                "updated_at",
            ]
        )
        _show(conversation, reply)
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
        leaf = shown_branch(conversation, list(conversation.messages.all()))[-1]
        conversation.current_leaf = leaf
        conversation.save(update_fields=["current_leaf"])
        return str(leaf.id)


def _lock_for_turn(
    user_id: int, conversation_id: str
) -> tuple[Conversation, limits.TokenWindow | None]:
    window = _check_limits(user_id)
    conversation = _lock_conversation(user_id, conversation_id)
    _refuse_if_generating(conversation)
    return conversation, window


def _check_limits(user_id: int) -> limits.TokenWindow | None:
    try:
        return limits.check_turn(user_id)
    except limits.LimitReached as refusal:
        raise TurnRefused("limit_reached", str(refusal)) from None


def _message_in(conversation: Conversation, message_id: str, role: str | None) -> Message:
    found = conversation.messages.filter(id=message_id) if _is_uuid(message_id) else None
    if role is not None and found is not None:
        found = found.filter(role=role)
    message = found.first() if found is not None else None
    if message is None:
        raise TurnRefused("not_found", "That message doesn't exist.")
    return message


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _show(conversation: Conversation, leaf: Message) -> None:
    conversation.current_leaf = leaf
    conversation.save(update_fields=["current_leaf", "updated_at"])


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
    plan = _plan_reply(conversation, [user_message], None)
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


def _new_conversation(user_id: int, first_message: str) -> Conversation:
    """A conversation with the default settings, not saved yet."""
    defaults = default_settings()
    return Conversation(
        owner_id=user_id,
        title=title_from(first_message),
        model=defaults.model,
        system_prompt=defaults.system_prompt,
        params=defaults.params,
    )


def apply_settings(conversation: Conversation, chosen: ConversationSettings) -> None:
    """Set (not save) checked settings on a conversation."""
    conversation.model = chosen.model
    conversation.system_prompt = chosen.system_prompt
    conversation.params = chosen.params


def _params_for(model: str, saved: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    try:
        return clean_params({**saved, **changes}, model)
    except InvalidParams as error:
        raise TurnRefused("bad_params", str(error), error.errors) from None


def _lock_conversation(user_id: int, conversation_id: str) -> Conversation:
    # The row lock serialises concurrent sends into one conversation, so the
    # "already generating" check below can't be raced (PostgreSQL; SQLite's
    # IMMEDIATE transactions serialise all writers anyway).
    try:
        return Conversation.objects.select_for_update().get(id=conversation_id, owner_id=user_id)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise TurnRefused("not_found", "That conversation doesn't exist.") from None


def _refuse_if_generating(conversation: Conversation) -> None:
    streaming = list(
        conversation.messages.filter(status=Message.Status.STREAMING).values_list(
            "id", "worker", "updated_at"
        )
    )
    if not streaming:
        return
    # Stale, or its worker's heartbeat stopped: a killed worker's reply.
    stale = heartbeat.abandoned(streaming)
    mark_interrupted(Message.objects.filter(id__in=stale))
    if len(stale) < len(streaming):
        raise TurnRefused("busy", "A reply is already being generated in this conversation.")


def _create_reply(conversation: Conversation, parent: Message, plan: ReplyPlan) -> Message:
    reply = _new_reply(conversation, parent, plan)
    reply.save(force_insert=True)
    return reply


def _new_reply(conversation: Conversation, parent: Message, plan: ReplyPlan) -> Message:
    return Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        parent=parent,
        model=conversation.model,
        worker=settings.GLMWEB_WORKER_ID,
        context_left_out=plan.context.left_out,
        reserved_tokens=plan.reserved_tokens,
    )


def _current_branch(conversation: Conversation) -> list[Message]:
    """The messages shown, oldest first: the branch of ``current_leaf``."""
    return shown_branch(conversation, list(conversation.messages.order_by("created_at")))


def shown_branch(conversation: Conversation, messages: list[Message]) -> list[Message]:
    """The branch shown among ``messages`` (all of the conversation's, oldest first).

    It ends at ``current_leaf`` and then follows the newest child down, so a
    stale leaf still ends on a message; with no leaf saved (older data) it is
    the newest message's branch.
    """
    if not messages:
        return []
    by_id = {message.id: message for message in messages}
    leaf = by_id.get(conversation.current_leaf_id) if conversation.current_leaf_id else None
    if leaf is None:
        return branch_ending_at(messages[-1], messages)
    newest_child: dict[uuid.UUID, Message] = {}
    for message in messages:
        if message.parent_id is not None:
            newest_child[message.parent_id] = message
    while leaf.id in newest_child:
        leaf = newest_child[leaf.id]
    return branch_ending_at(leaf, messages)


def branch_ending_at(leaf: Message, messages: list[Message]) -> list[Message]:
    by_id = {message.id: message for message in messages}
    branch: list[Message] = []
    node: Message | None = leaf
    while node is not None:
        branch.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    branch.reverse()
    return branch


@dataclass(frozen=True)
class ReplyPlan:
    """A reply's request, within its context and its owner's token limits."""

    context: Context
    request: upstream.ChatRequest
    # Held against the token limits while the reply streams (chat.limits).
    reserved_tokens: int


def _plan_reply(
    conversation: Conversation, history: list[Message], window: limits.TokenWindow | None
) -> ReplyPlan:
    """The reply's request, its max tokens capped to what the tightest token limit leaves."""
    context = fit_context(conversation, history)
    request = request_for(conversation, context)
    prompt = sum(estimate_tokens(message["content"]) for message in context.messages)
    try:
        max_tokens, reserved = limits.cap_reply(window, prompt, request.max_tokens)
    except limits.LimitReached as refusal:
        raise TurnRefused("limit_reached", str(refusal)) from None
    return ReplyPlan(context, dataclasses.replace(request, max_tokens=max_tokens), reserved)


def _make_turn(
    conversation: Conversation, reply: Message, user_message: Message | None, plan: ReplyPlan
) -> Turn:
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


def build_request(conversation: Conversation, history: list[Message]) -> upstream.ChatRequest:
    return request_for(conversation, fit_context(conversation, history))


def request_for(conversation: Conversation, context: Context) -> upstream.ChatRequest:
    params = conversation.params
    model = model_named(conversation.model)
    return upstream.ChatRequest(
        model=conversation.model,
        messages=context.messages,
        max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        stop=params.get("stop") or None,
        # Only a model known to take the switch gets it: others may refuse the field.
        thinking=params.get("thinking") if model is not None and model.thinking else None,
    )


# --- Fitting the model's context ---------------------------------------------

# A rough count that needs no tokenizer: about four characters a token (fewer
# for CJK text, which the reserve below partly absorbs), plus each message's
# role and framing.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
# Room kept for the reply when max tokens isn't set (at most a quarter of the context).
REPLY_RESERVE_TOKENS = 4096


@dataclass(frozen=True)
class Context:
    """The messages a request sends, and how many earlier ones were left out."""

    messages: list[dict[str, str]]
    left_out: int
    fits: bool


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


def context_budget(conversation: Conversation) -> int:
    """Tokens the messages may take: the model's context less room for the reply."""
    context = context_tokens(conversation.model)
    reserve = conversation.params.get("max_tokens") or min(REPLY_RESERVE_TOKENS, context // 4)
    return context - reserve


def fit_context(conversation: Conversation, history: list[Message]) -> Context:
    """The oldest turns are left out until the rest fits the model's context.

    The system prompt and the newest user message (with the partial reply after
    it, when continuing) always stay; ``fits`` says whether they alone fit.
    """
    # An empty reply (failed before its first token) would only confuse the model.
    turns = [{"role": m.role, "content": m.content} for m in history if m.content]
    system = []
    if conversation.system_prompt:
        system = [{"role": "system", "content": conversation.system_prompt}]
    budget = context_budget(conversation)
    newest_question = max(
        (i for i, turn in enumerate(turns) if turn["role"] == Message.Role.USER), default=0
    )
    used = sum(estimate_tokens(m["content"]) for m in system + turns[newest_question:])
    fits = used <= budget
    start = newest_question
    while start > 0 and used + estimate_tokens(turns[start - 1]["content"]) <= budget:
        start -= 1
        used += estimate_tokens(turns[start]["content"])
    # Never open with a reply whose question was left out.
    while start < newest_question and turns[start]["role"] != Message.Role.USER:
        start += 1
    return Context(messages=system + turns[start:], left_out=start, fits=fits)


def _refuse_if_over_context(
    conversation: Conversation, history: list[Message], what: str, advice: str
) -> None:
    """Refuse a turn whose newest message can't fit even alone, before anything is saved.

    With a partial reply after that message (continuing), the two together.
    """
    context = fit_context(conversation, history)
    if context.fits:
        return
    needed = sum(estimate_tokens(message["content"]) for message in context.messages)
    budget = context_budget(conversation)
    prompt = " and the system prompt" if conversation.system_prompt else ""
    raise TurnRefused(
        "too_long",
        f"{what}{prompt} would take about {needed:,} tokens, more than "
        f"{conversation.model}'s context leaves for it ({max(budget, 0):,}, keeping room "
        f"for the reply). {advice}",
    )


def _refuse_if_message_over_context(
    conversation: Conversation, history: list[Message], text: str
) -> None:
    pending = Message(role=Message.Role.USER, content=text)
    _refuse_if_over_context(
        conversation,
        [*history, pending],
        "This message",
        "Shorten the message, or lower max tokens in the settings.",
    )


def title_from(text: str) -> str:
    line = clean_title(text)
    if len(line) <= TITLE_CHARS:
        return line
    return line[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


# --- Interrupted replies --------------------------------------------------------


def mark_interrupted(replies: Any) -> int:
    """Mark replies that no live task streams any more; their checkpointed text stays."""
    return replies.filter(status=Message.Status.STREAMING).update(
        status=Message.Status.INTERRUPTED,
        error_code="interrupted",
        error_message=INTERRUPTED_MESSAGE,
        updated_at=timezone.now(),
    )


INTERRUPTED_MESSAGE = "The reply was interrupted by a server restart. The text so far is kept."


def recover_worker_replies(worker_id: str) -> int:
    """At start-up: what this worker was streaming before it restarted is dead."""
    count = mark_interrupted(Message.objects.filter(worker=worker_id))
    if count:
        log.warning("marked replies interrupted after restart", extra={"count": count})
    return count


def sweep_stale_replies() -> int:
    """Replies whose worker stopped checkpointing (it died and never came back)."""
    stale_before = timezone.now() - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    return mark_interrupted(Message.objects.filter(updated_at__lt=stale_before))


_recovered = False
# Database calls run on several threads: a turn started while the first socket's
# recovery runs must wait for it, or it would be marked interrupted too.
_recovering = threading.Lock()


def recovered() -> bool:
    """Whether this process has marked its earlier run's replies (no trip to find out)."""
    return _recovered


def recover_once() -> None:
    global _recovered
    with _recovering:
        if not _recovered:
            recover_worker_replies(settings.GLMWEB_WORKER_ID)
            heartbeat.forget_gone_workers()
            # Before its first turn: a worker killed before its first tick is
            # found dead by its row too (chat.heartbeat.abandoned).
            heartbeat.beat(settings.GLMWEB_WORKER_ID)
            _recovered = True


# --- Running a turn (event loop side) ------------------------------------------

# Turns running in this process, by conversation id. Holding the task here keeps
# it alive after the socket that started it goes away.
RUNNING: dict[uuid.UUID, TurnRunner] = {}


async def start(turn: Turn) -> None:
    """Run the turn in the background; its events go to the conversation group."""
    if not turn.is_new:
        return
    runner = TurnRunner(turn)
    RUNNING[turn.conversation_id] = runner
    runner.task = asyncio.create_task(runner.run(), name=f"turn-{turn.reply_id}")


def upstream_config() -> upstream.UpstreamConfig:
    return upstream.UpstreamConfig(
        base_url=settings.UPSTREAM_BASE_URL,
        api_key=settings.UPSTREAM_API_KEY,
        connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
        chunk_timeout=settings.UPSTREAM_CHUNK_TIMEOUT,
        deadline=settings.UPSTREAM_DEADLINE,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
        retry_after_max=settings.UPSTREAM_RETRY_AFTER_MAX_SECONDS,
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        keepalive_connections=settings.UPSTREAM_KEEPALIVE_CONNECTIONS,
        # Deltas are coalesced by reading less often: one read, one frame.
        read_interval=settings.GLMWEB_COALESCE_SECONDS,
    )


def event_batches(request: upstream.ChatRequest) -> AsyncIterator[list[upstream.Event]]:
    if settings.GLMWEB_DEMO_MODEL:
        return demo.stream_demo(request, settings.GLMWEB_COALESCE_SECONDS)
    return upstream.stream_chat_batches(request, upstream_config())


@dataclass
class TurnRunner:
    turn: Turn
    task: asyncio.Task[None] | None = None
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    seq: int = 0
    finish_reason: str = ""
    usage: upstream.Usage | None = None
    stop_requested: bool = False
    shutting_down: bool = False
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    _pending_content: list[str] = field(default_factory=list)
    _pending_reasoning: list[str] = field(default_factory=list)
    _ids: dict[str, str] = field(init=False)
    # Sockets on other workers that asked for this turn's events (their layer channels).
    followers: set[str] = field(default_factory=set)
    finished: bool = False
    _layer_outbox: asyncio.Queue[tuple[str | None, dict[str, Any]] | None] | None = None
    _sender: asyncio.Task[None] | None = None
    _stream_task: asyncio.Task[None] | None = None
    # The text's lengths (in parts) at the last checkpoint; None before the first with text.
    _checkpointed: tuple[int, int] | None = None
    _last_checkpoint: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        # Every event names its turn; the ids as text, once.
        self._ids = {
            "conversation": str(self.turn.conversation_id),
            "reply": str(self.turn.reply_id),
        }
        # A continued reply starts from its saved text; deltas carry only new text.
        if self.turn.prefix_content:
            self.content.append(self.turn.prefix_content)
        if self.turn.prefix_reasoning:
            self.reasoning.append(self.turn.prefix_reasoning)

    async def run(self) -> None:
        layer = get_channel_layer()
        if relay.reaches_other_processes(layer):
            # Sockets on other workers hear this turn through the layer and send
            # it stop and snapshot requests there; this process's sockets need
            # neither (chat.relay), and the upstream request doesn't wait for it.
            self._layer_outbox = asyncio.Queue()
            self._sender = asyncio.create_task(self._send_to_layer(layer))
        _keep_checkpointing()
        try:
            self._publish(self.turn.start_event())
            await self._stream_and_save()
        finally:
            if self._sender is not None and not self._sender.done():
                self._sender.cancel()  # only when cancelled: _send_last lets it finish
            RUNNING.pop(self.turn.conversation_id, None)

    async def _stream_and_save(self) -> None:
        self._stream_task = asyncio.create_task(self._stream())
        try:
            await asyncio.shield(self._stream_task)
        except asyncio.CancelledError:
            # The worker is shutting down; once restarted it marks the reply interrupted.
            self._stream_task.cancel()
            raise
        except upstream.UpstreamError as error:
            log.warning(
                "upstream failed",
                extra={"reply": str(self.turn.reply_id), "code": error.code, "tokens": self.seq},
            )
            await self._finish_with_error(error.code, error.user_message, error.retryable)
            return
        except Exception:
            log.exception("turn failed", extra={"reply": str(self.turn.reply_id)})
            await self._finish_with_error(
                "internal", "Something went wrong on our side. The text so far is kept.", True
            )
            return
        if self.shutting_down:
            await self._finish_with_error("interrupted", INTERRUPTED_MESSAGE, True)
            return
        await self._finish()

    async def _stream(self) -> None:
        try:
            async for batch in event_batches(self.turn.request):
                for event in batch:
                    self._take(event)
                # One frame per batch: the source reads at most once per
                # GLMWEB_COALESCE_SECONDS (see upstream_config).
                self._flush()
        except asyncio.CancelledError:
            if not self.stop_requested:
                raise

    def stop(self) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self.stop_requested = True
            self._stream_task.cancel()

    def interrupt(self) -> None:
        """The worker is shutting down: stop reading, save the text as interrupted."""
        if self._stream_task is not None and not self._stream_task.done():
            self.shutting_down = True
            self.stop()

    def _take(self, event: upstream.Event) -> None:
        match event:
            case upstream.ContentDelta(text):
                self.content.append(text)
                self._pending_content.append(text)
            case upstream.ReasoningDelta(text):
                self.reasoning.append(text)
                self._pending_reasoning.append(text)
            case upstream.Finish(reason):
                self.finish_reason = reason
            case upstream.Usage():
                self.usage = event

    def _flush(self) -> None:
        if not (self._pending_content or self._pending_reasoning):
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
            # A worker killed a few seconds in keeps the start of the reply.
            _keep_checkpointing().no_later_than(self.first_token_at + first_checkpoint_seconds())
        event = self._event_head("delta")
        if self._pending_reasoning:
            event["reasoning"] = "".join(self._pending_reasoning)
            self._pending_reasoning.clear()
        if self._pending_content:
            event["content"] = "".join(self._pending_content)
            self._pending_content.clear()
        self._publish(event)

    def _publish(self, event: dict[str, Any], to: str | None = None) -> None:
        """This process's sockets get the event at once; other workers' through the layer."""
        if to is None:
            relay.publish(self._ids["conversation"], event)
        if self._layer_outbox is not None and (
            to is not None or self.followers or event["type"] in ANNOUNCED_EVENTS
        ):
            self._layer_outbox.put_nowait((to, event))

    async def _send_to_layer(self, layer: Any) -> None:
        # One sender for the whole turn keeps the layer's messages in order: a
        # snapshot can't overtake the deltas it includes, and a slow layer never
        # blocks reading from the upstream.
        assert self._layer_outbox is not None
        # Listen for requests before announcing the turn: a socket elsewhere
        # asks only once it has heard of it.
        await _layer_call(self._listen_for_requests(layer))
        group = conversation_group(self.turn.conversation_id)
        while (item := await self._layer_outbox.get()) is not None:
            to, event = item
            message = {"type": "chat.event", "event": event, "origin": relay.PROCESS}
            if to is not None:
                channels = [to]
            elif event["type"] in ANNOUNCED_EVENTS:
                channels = []
                await _layer_call(layer.group_send(group, message))
            else:
                channels = list(self.followers)
            for channel in channels:
                # A message the layer refuses shows as a gap in seq; the socket
                # then asks for a new snapshot.
                await _layer_call(layer.send(channel, message))
        await _layer_call(self._stop_listening(layer))

    async def _listen_for_requests(self, layer: Any) -> None:
        channel = await control_channel(layer)
        await layer.group_add(control_group(self.turn.conversation_id), channel)

    async def _stop_listening(self, layer: Any) -> None:
        # Unless the conversation's next turn, here too, already listens: the
        # group is the conversation's, the channel this process's.
        if RUNNING.get(self.turn.conversation_id) in (None, self):
            channel = await control_channel(layer)
            await layer.group_discard(control_group(self.turn.conversation_id), channel)

    async def _send_last(self, kind: str, fields: dict[str, Any]) -> None:
        """Flush what is pending, then send the turn's final event and wait for it to leave."""
        self._flush()
        self.finished = True
        self._publish({**self._event_head(kind), **fields})
        if self._layer_outbox is not None and self._sender is not None:
            self._layer_outbox.put_nowait(None)
            await self._sender

    def control(self, message: dict[str, Any]) -> None:
        """A stop or snapshot request from a socket on another worker."""
        kind = message.get("type")
        if kind == "turn.stop":
            self.stop()
        elif kind == "turn.snapshot" and not self.finished:
            # From now on that socket follows this turn.
            self.followers.add(message["reply_to"])
            self._publish(self.snapshot(), to=message["reply_to"])
        elif kind == "turn.unfollow":
            self.followers.discard(message["reply_to"])

    def snapshot(self) -> dict[str, Any]:
        # Text not yet flushed is left out: it arrives in the next delta, whose
        # seq is above this snapshot's.
        return {
            **self._event_head("snapshot", advance=False),
            "content": _joined_without(self.content, self._pending_content),
            "reasoning": _joined_without(self.reasoning, self._pending_reasoning),
            "model": self.turn.model,
            "parent": str(self.turn.parent_id),
            "status": Message.Status.STREAMING,
        }

    def checkpoint_due(self, now: float) -> tuple[uuid.UUID, str, str] | None:
        """The text to checkpoint at this tick, if it's time: see _Checkpointer."""
        if self.finished:
            return None
        lengths = (len(self.content), len(self.reasoning))
        if self._checkpointed is None:
            first_at = self.first_checkpoint_at()
            due = first_at is not None and now >= first_at
        else:
            due = (
                lengths != self._checkpointed
                and now - self._last_checkpoint >= settings.GLMWEB_CHECKPOINT_SECONDS
            )
        # And now and then anyway: a reply that stops checkpointing is taken
        # for dead by the stale sweep.
        keepalive_due = now - self._last_checkpoint > settings.GLMWEB_STALE_STREAM_SECONDS / 3
        if not (due or keepalive_due):
            return None
        # Before the first token (a keep-alive) the first checkpoint is still to come.
        self._checkpointed = None if self.first_token_at is None else lengths
        self._last_checkpoint = now
        return self.turn.reply_id, "".join(self.content), "".join(self.reasoning)

    def first_checkpoint_at(self) -> float | None:
        """When the first checkpoint is due: soon after the first token (none before)."""
        if self.finished or self._checkpointed is not None or self.first_token_at is None:
            return None
        return self.first_token_at + first_checkpoint_seconds()

    async def _finish(self) -> None:
        status = Message.Status.STOPPED if self.stop_requested else Message.Status.COMPLETE
        outcome = self._outcome(status)
        await save_reply(self.turn.reply_id, outcome, self.turn.prior_usage)
        titles.start(self.turn.conversation_id, self.turn.reply_id)
        await self._send_last(
            "done",
            {
                "status": status,
                "finish_reason": outcome.finish_reason,
                "usage": outcome.usage_dict(),
                "ttft_ms": outcome.ttft_ms,
                "duration_ms": outcome.duration_ms,
            },
        )

    async def _finish_with_error(self, code: str, message: str, retryable: bool) -> None:
        status = Message.Status.INTERRUPTED if self.content else Message.Status.ERROR
        outcome = self._outcome(status, error_code=code, error_message=message)
        await save_reply(self.turn.reply_id, outcome, self.turn.prior_usage)
        await self._send_last(
            "error",
            {
                "code": code,
                "message": message,
                "status": status,
                "retryable": retryable or status == Message.Status.INTERRUPTED,
            },
        )

    def _event_head(self, kind: str, *, advance: bool = True) -> dict[str, Any]:
        if advance:
            self.seq += 1
        return {
            "type": kind,
            **self._ids,
            "seq": self.seq,
        }

    def _outcome(self, status: str, error_code: str = "", error_message: str = "") -> ReplyOutcome:
        content = "".join(self.content)
        reasoning = "".join(self.reasoning)
        usage, estimated = self.usage, False
        if usage is None:
            new_content = content[len(self.turn.prefix_content) :]
            new_reasoning = reasoning[len(self.turn.prefix_reasoning) :]
            usage = estimate_usage(self.turn.request, new_content, new_reasoning)
            estimated = True
        return ReplyOutcome(
            content=content,
            reasoning=reasoning,
            status=status,
            finish_reason=self.finish_reason if status == Message.Status.COMPLETE else "",
            error_code=error_code,
            error_message=error_message,
            usage=usage,
            usage_estimated=estimated,
            ttft_ms=None
            if self.first_token_at is None
            else round((self.first_token_at - self.started) * 1000),
            duration_ms=round((time.monotonic() - self.started) * 1000),
        )


# A reply's first checkpoint comes this long after its first token (or sooner
# with a shorter GLMWEB_CHECKPOINT_SECONDS): a worker killed a few seconds into
# a reply keeps its start, and the write lands within a second.
FIRST_CHECKPOINT_SECONDS = 0.75


def first_checkpoint_seconds() -> float:
    return min(FIRST_CHECKPOINT_SECONDS, settings.GLMWEB_CHECKPOINT_SECONDS)


class _Checkpointer:
    """One task checkpoints every turn running on this event loop, and beats for the worker.

    Each tick is one trip to a database thread and one commit, however many
    turns run: the worker's heartbeat (chat.heartbeat) and the text of each
    turn that is due. Ticks come every GLMWEB_CHECKPOINT_SECONDS (at most
    HEARTBEAT_SECONDS apart), and sooner when a turn's first checkpoint is due.
    """

    def __init__(self) -> None:
        # A turn just started needs no heartbeat yet: its reply row is fresh.
        self.next_tick = time.monotonic() + self.interval()
        self.moved = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run(), name="checkpoints")

    def no_later_than(self, when: float) -> None:
        if when < self.next_tick:
            self.next_tick = when
            self.moved.set()

    @staticmethod
    def interval() -> float:
        return min(settings.GLMWEB_CHECKPOINT_SECONDS, heartbeat.HEARTBEAT_SECONDS)

    async def run(self) -> None:
        while True:
            await self.sleep_until_tick()
            if not RUNNING:
                return
            now, runners = time.monotonic(), list(RUNNING.values())
            due = [text for runner in runners if (text := runner.checkpoint_due(now))]
            self.next_tick = float("inf")  # until this tick's write is done
            try:
                await save_checkpoints(due, settings.GLMWEB_WORKER_ID)
            except Exception:
                log.exception("checkpoint failed", extra={"replies": len(due)})
            firsts = [runner.first_checkpoint_at() for runner in RUNNING.values()]
            soonest = [at for at in firsts if at is not None]
            self.next_tick = min(self.next_tick, time.monotonic() + self.interval(), *soonest)

    async def sleep_until_tick(self) -> None:
        while (delay := self.next_tick - time.monotonic()) > 0:
            self.moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.moved.wait(), delay)


_checkpointer: _Checkpointer | None = None


def _keep_checkpointing() -> _Checkpointer:
    global _checkpointer
    loop = asyncio.get_running_loop()
    current = _checkpointer
    if current is None or current.task.done() or current.task.get_loop() is not loop:
        current = _checkpointer = _Checkpointer()
    return current


def _joined_without(parts: list[str], pending: list[str]) -> str:
    text = "".join(parts)
    held_back = sum(map(len, pending))
    return text[: len(text) - held_back]


@dataclass(frozen=True)
class ReplyOutcome:
    content: str
    reasoning: str
    status: str
    finish_reason: str
    error_code: str
    error_message: str
    usage: upstream.Usage
    usage_estimated: bool
    ttft_ms: int | None
    duration_ms: int

    def usage_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "total_tokens": self.usage.total_tokens,
            "estimated": self.usage_estimated,
        }


def estimate_usage(request: upstream.ChatRequest, content: str, reasoning: str) -> upstream.Usage:
    """About four characters a token: only for replies the upstream never counted."""
    prompt = request.estimated_prompt_tokens()
    completion = (len(content) + len(reasoning) + 3) // 4
    return upstream.Usage(prompt, completion, prompt + completion)


@database_call
def save_checkpoints(texts: list[tuple[uuid.UUID, str, str]], worker_id: str = "") -> None:
    """Save the replies' text so far and, with ``worker_id``, that worker's heartbeat."""
    # One statement run for every reply (on PostgreSQL one round trip, pipelined),
    # not an ORM update per reply: a checkpoint can hold hundreds.
    message = Message._meta
    sql = f"""
        UPDATE {message.db_table} SET content = %s, reasoning = %s, updated_at = %s
        WHERE {message.pk.column} = %s AND status = %s
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    streaming = Message.Status.STREAMING.value
    rows = [
        (content, reasoning, now, message.pk.get_db_prep_value(reply_id, connection), streaming)
        for reply_id, content, reasoning in texts
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        if worker_id:
            heartbeat.beat(worker_id)
        if rows:
            cursor.executemany(sql, rows)


@database_call
def save_reply(
    reply_id: uuid.UUID, outcome: ReplyOutcome, prior_usage: upstream.Usage | None = None
) -> None:
    # The reply and its line in the usage ledger (chat.usage) are saved together.
    with transaction.atomic():
        saved = Message.objects.filter(id=reply_id).update(
            content=outcome.content,
            reasoning=outcome.reasoning,
            status=outcome.status,
            finish_reason=outcome.finish_reason,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
            total_tokens=outcome.usage.total_tokens,
            usage_estimated=outcome.usage_estimated,
            ttft_ms=outcome.ttft_ms,
            duration_ms=outcome.duration_ms,
            updated_at=timezone.now(),
        )
        if saved:
            usage.record_reply(reply_id)
        if saved and prior_usage is not None:
            # A continuation: the ledger counted only this request's tokens
            # (the earlier part was counted when it was saved); the reply shows both.
            Message.objects.filter(id=reply_id).update(
                prompt_tokens=F("prompt_tokens") + prior_usage.prompt_tokens,
                completion_tokens=F("completion_tokens") + prior_usage.completion_tokens,
                total_tokens=F("total_tokens") + prior_usage.total_tokens,
            )


async def interrupt_running_turns(timeout: float = 10) -> None:
    """At shutdown: every running turn saves its text so far, as interrupted.

    Without this a restart would lose what came since the last checkpoint.
    """
    runners = list(RUNNING.values())
    for runner in runners:
        runner.interrupt()
    tasks = [runner.task for runner in runners if runner.task is not None]
    if tasks:
        log.info("interrupting running turns for shutdown", extra={"turns": len(tasks)})
        await asyncio.wait(tasks, timeout=timeout)


def is_running_here(conversation_id: uuid.UUID) -> bool:
    return conversation_id in RUNNING


def running_here(conversation: str) -> TurnRunner | None:
    """The turn generating in this conversation in this process, until its last event."""
    try:
        runner = RUNNING.get(uuid.UUID(conversation))
    except ValueError:
        return None
    return None if runner is None or runner.finished else runner


async def request_stop(layer: Any, conversation: str) -> None:
    runner = running_here(conversation)
    if runner is not None:
        runner.stop()
    else:  # it may run on another worker
        await layer.group_send(control_group(conversation), stop_message(conversation))


async def _layer_call(call: Awaitable[None]) -> None:
    try:
        await call
    except Exception:
        log.warning("channel layer call for a turn failed", exc_info=True)


# Sent to every socket that joined the conversation, on every worker: how
# sockets elsewhere learn that a turn began (and ask to follow it) or ended.
ANNOUNCED_EVENTS = frozenset({"start", "done", "error"})


def stop_message(conversation: str) -> dict[str, str]:
    return {"type": "turn.stop", "conversation": conversation}


def snapshot_request(conversation: str, reply_to: str) -> dict[str, str]:
    return {"type": "turn.snapshot", "conversation": conversation, "reply_to": reply_to}


def unfollow_message(conversation: str, reply_to: str) -> dict[str, str]:
    return {"type": "turn.unfollow", "conversation": conversation, "reply_to": reply_to}


# One layer channel per process (and event loop) hears the control requests for
# every turn running here. A turn adds it to its conversation's control group
# and leaves it there: a request for a turn that has ended is ignored, and the
# layer expires the group. (A channel, a receive loop, a discard and an end
# message per turn were five Redis round trips per turn, and under load left
# receive loops behind.)
_control_channels: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, asyncio.Task[str]]
] = weakref.WeakKeyDictionary()
_LISTENERS: set[asyncio.Task[None]] = set()


async def control_channel(layer: Any) -> str:
    loop = asyncio.get_running_loop()
    per_loop = _control_channels.setdefault(loop, {})
    opening = per_loop.get(id(layer))
    if opening is None or (opening.done() and opening.exception() is not None):
        opening = per_loop[id(layer)] = loop.create_task(_open_control_channel(layer))
    return await opening


async def _open_control_channel(layer: Any) -> str:
    channel = await layer.new_channel()
    listener = asyncio.get_running_loop().create_task(_listen_for_control(layer, channel))
    _LISTENERS.add(listener)
    listener.add_done_callback(_LISTENERS.discard)
    return channel


async def _listen_for_control(layer: Any, channel: str) -> None:
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("control channel receive failed", exc_info=True)
            await asyncio.sleep(1)
            continue
        runner = running_here(str(message.get("conversation", "")))
        if runner is not None:
            runner.control(message)
