"""What a turn sends: the history fitted to the model's context, as a request.

Token counts are estimates that need no tokenizer: about four characters a
token (fewer for CJK text, which the reserve for the reply partly absorbs),
plus each message's role and framing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from chat import upstream
from chat.models import Conversation, Message
from chat.params import Catalog
from chat.usage import limits

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


@dataclass(frozen=True)
class ReplyPlan:
    """A reply's request, within its context and its owner's token limits."""

    context: Context
    request: upstream.ChatRequest
    # Held against the token limits while the reply streams (chat.usage.limits).
    reserved_tokens: int


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


def estimate_usage(request: upstream.ChatRequest, content: str, reasoning: str) -> upstream.Usage:
    """About four characters a token: only for replies the upstream never counted."""
    prompt = request.estimated_prompt_tokens()
    completion = (len(content) + len(reasoning) + 3) // 4
    return upstream.Usage(prompt, completion, prompt + completion)


def context_budget(conversation: Conversation, catalog: Catalog) -> int:
    """Tokens the messages may take: the model's context less room for the reply."""
    context = catalog.context_tokens(conversation.model)
    reserve = conversation.params.get("max_tokens") or min(REPLY_RESERVE_TOKENS, context // 4)
    return int(context - reserve)


def fit_context(conversation: Conversation, history: list[Message], catalog: Catalog) -> Context:
    """The oldest turns are left out until the rest fits the model's context.

    The system prompt and the newest user message (with the partial reply after
    it, when continuing) always stay; ``fits`` says whether they alone fit.
    """
    # An empty reply (failed before its first token) would only confuse the model.
    turns = [{"role": m.role, "content": m.content} for m in history if m.content]
    system = []
    if conversation.system_prompt:
        system = [{"role": "system", "content": conversation.system_prompt}]
    budget = context_budget(conversation, catalog)
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


def too_long(
    conversation: Conversation, history: list[Message], catalog: Catalog, what: str, advice: str
) -> str:
    """Why the newest message of ``history`` can't fit even alone, or "" when it fits.

    With a partial reply after that message (continuing), the two together.
    """
    context = fit_context(conversation, history, catalog)
    if context.fits:
        return ""
    needed = sum(estimate_tokens(message["content"]) for message in context.messages)
    budget = context_budget(conversation, catalog)
    prompt = " and the system prompt" if conversation.system_prompt else ""
    return (
        f"{what}{prompt} would take about {needed:,} tokens, more than "
        f"{conversation.model}'s context leaves for it ({max(budget, 0):,}, keeping room "
        f"for the reply). {advice}"
    )


def request_for(
    conversation: Conversation, context: Context, catalog: Catalog
) -> upstream.ChatRequest:
    params = conversation.params
    model = catalog.named(conversation.model)
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


def plan_reply(
    conversation: Conversation,
    history: list[Message],
    catalog: Catalog,
    room: limits.Room | None,
) -> ReplyPlan:
    """The reply's request, its max tokens capped to what the tightest token limit and
    the budget leave.

    Raises limits.LimitReached when a limit leaves no room for a reply.
    """
    context = fit_context(conversation, history, catalog)
    request = request_for(conversation, context, catalog)
    prompt = sum(estimate_tokens(message["content"]) for message in context.messages)
    model = catalog.named(conversation.model)
    max_tokens, reserved = limits.cap_reply(room, prompt, request.max_tokens, model)
    return ReplyPlan(context, dataclasses.replace(request, max_tokens=max_tokens), reserved)
