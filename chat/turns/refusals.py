"""A turn start's checks and refusals: the rules it reads once, the limits, the model,
the context, the reply's plan; each refusal a ``TurnRefused`` with the protocol's code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat.models import ChatModel, Conversation, GroupPolicy, Message
from chat.params import Catalog, InvalidParams, clean_params
from chat.turns import context
from chat.turns.context import ReplyPlan
from chat.usage import limits, policy


class TurnRefused(Exception):
    """A send or regenerate that can't start; ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # For bad settings: each wrong field and what it may be.
        self.fields = fields


@dataclass(frozen=True)
class Rules:
    """What a turn start reads once: the models offered, the person's group policies."""

    catalog: Catalog
    policies: list[GroupPolicy]

    @classmethod
    def of(cls, user_id: int) -> Rules:
        return cls(ChatModel.objects.catalog(), policy.policies_of(user_id))


def check_limits(user_id: int, rules: Rules) -> limits.Room:
    try:
        return limits.check_turn(user_id, rules.catalog, rules.policies)
    except limits.LimitReached as refusal:
        raise TurnRefused(refusal.code, str(refusal)) from None


def refuse_if_model_not_allowed(model: str, catalog: Catalog, allowed: set[str] | None) -> None:
    if reason := policy.not_allowed(model, catalog, allowed):
        raise TurnRefused("model_not_allowed", reason)


def params_for(
    model: str, saved: dict[str, Any], changes: dict[str, Any], catalog: Catalog
) -> dict[str, Any]:
    try:
        return clean_params({**saved, **changes}, model, catalog)
    except InvalidParams as error:
        raise TurnRefused("bad_params", str(error), error.errors) from None


def refuse_if_over_context(
    conversation: Conversation, history: list[Message], catalog: Catalog, what: str, advice: str
) -> None:
    """Refuse a turn whose newest message can't fit even alone, before anything is saved."""
    if reason := context.too_long(conversation, history, catalog, what, advice):
        raise TurnRefused("too_long", reason)


def refuse_if_message_over_context(
    conversation: Conversation, history: list[Message], text: str, catalog: Catalog
) -> None:
    pending = Message(role=Message.Role.USER, content=text)
    refuse_if_over_context(
        conversation,
        [*history, pending],
        catalog,
        "This message",
        "Shorten the message, or lower max tokens in the settings.",
    )


def plan_reply(
    conversation: Conversation, history: list[Message], catalog: Catalog, room: limits.Room | None
) -> ReplyPlan:
    try:
        return context.plan_reply(conversation, history, catalog, room)
    except limits.LimitReached as refusal:
        raise TurnRefused(refusal.code, str(refusal)) from None
