"""Whose rules apply: a person's limits and models from their own row, their groups
and the site's defaults.

Each limit is per person. On a person's own limits (UserLimits) and on a group's
(GroupPolicy): empty means not set there; 0 means unlimited.

- A value set on the person's own row wins.
- Otherwise, the most generous of the values their groups set: 0 (unlimited)
  beats any number, and a larger number beats a smaller one.
- Otherwise, the site's default (GLMWEB_LIMIT_* settings).

Models: staff, superusers and anyone in a group that names no models (or in
no group with a policy) may use every enabled model; anyone else, the union of
their groups' models. Either way only enabled models are offered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from chat.models import GroupPolicy, UserLimits
from chat.params import Catalog

LIMIT_NAMES = (
    "tokens_per_day",
    "tokens_per_month",
    "replies_per_minute",
    "concurrent_generations",
    "monthly_budget",
)


@dataclass(frozen=True)
class Limits:
    """A person's limits in force; 0 means unlimited."""

    tokens_per_day: int
    tokens_per_month: int
    replies_per_minute: int
    concurrent_generations: int
    monthly_budget: Decimal = Decimal(0)

    def none(self) -> bool:
        return not any(getattr(self, field.name) for field in fields(self))


def site_defaults() -> Limits:
    return Limits(
        tokens_per_day=settings.GLMWEB_LIMIT_TOKENS_PER_DAY,
        tokens_per_month=settings.GLMWEB_LIMIT_TOKENS_PER_MONTH,
        replies_per_minute=settings.GLMWEB_LIMIT_REPLIES_PER_MINUTE,
        concurrent_generations=settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS,
        monthly_budget=settings.GLMWEB_LIMIT_MONTHLY_BUDGET,
    )


def most_generous(values: Iterable[int | Decimal]) -> int | Decimal | None:
    """0 (unlimited) beats any number; else the largest; None when nothing is set."""
    chosen = [value for value in values if value is not None]
    if not chosen:
        return None
    return 0 if 0 in chosen else max(chosen)


def effective(row: UserLimits | None, policies: Iterable[GroupPolicy] = ()) -> Limits:
    """The row's own values where set, else the groups' most generous, else the site's."""
    defaults = site_defaults()
    policies = list(policies)

    def pick(name: str) -> object:
        own = None if row is None else getattr(row, name)
        if own is not None:
            return own
        grouped = most_generous(getattr(policy, name) for policy in policies)
        return getattr(defaults, name) if grouped is None else grouped

    return Limits(**{name: pick(name) for name in LIMIT_NAMES})  # type: ignore[arg-type]


def policies_of(user_id: int) -> list[GroupPolicy]:
    """The policies of the person's groups: one query."""
    return list(GroupPolicy.objects.filter(group__user__id=user_id))


def policies_by_user() -> dict[int, list[GroupPolicy]]:
    """Every person's group policies: two queries."""
    by_group = {policy.pk: policy for policy in GroupPolicy.objects.all()}
    members = get_user_model().groups.through.objects.filter(group_id__in=list(by_group))
    found: dict[int, list[GroupPolicy]] = {}
    for user_id, group_id in members.values_list("user_id", "group_id"):
        found.setdefault(user_id, []).append(by_group[group_id])
    return found


def limits_for(user_id: int) -> Limits:
    return effective(UserLimits.objects.filter(user_id=user_id).first(), policies_of(user_id))


def allowed_names(user_id: int, policies: list[GroupPolicy] | None = None) -> set[str] | None:
    """The models this person may use, by name; None: every enabled model."""
    policies = policies_of(user_id) if policies is None else policies
    if not policies:
        return None
    chosen = GroupPolicy.allowed_models.through.objects.filter(
        grouppolicy_id__in=[policy.pk for policy in policies]
    ).values_list("grouppolicy_id", "chatmodel__name")
    names: dict[int, set[str]] = {}
    for policy_id, name in chosen:
        names.setdefault(policy_id, set()).add(name)
    if len(names) < len(policies):
        return None  # a group that names no models allows them all
    person = get_user_model().objects.filter(pk=user_id)
    if person.filter(Q(is_staff=True) | Q(is_superuser=True)).exists():
        return None
    return set().union(*names.values())


def catalog_for(user_id: int, catalog: Catalog) -> Catalog:
    """The enabled models this person may use."""
    return catalog.only(allowed_names(user_id))


def not_allowed(model: str, catalog: Catalog, allowed: set[str] | None) -> str:
    """Why this person may not use ``model``, or "" when they may."""
    if catalog.named(model) is None:
        return (
            f"The model {model} is not offered any more. Choose another model in the "
            "conversation's settings."
        )
    if allowed is not None and model not in allowed:
        offered = ", ".join(name for name in catalog.names() if name in allowed) or "none"
        return (
            f"Your groups don't give you the model {model}. Choose one of yours in the "
            f"settings: {offered}."
        )
    return ""
