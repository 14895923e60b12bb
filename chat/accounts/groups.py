"""Group membership from the identity provider's claim or the proxy's header."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

log = logging.getLogger(__name__)

GROUP_NAME_MAX = Group._meta.get_field("name").max_length or 150


def group_names_from_claim(value: object) -> list[str]:
    """A claim's groups: a list of strings or one string. Anything else names no group."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return []
    names = {item.strip() for item in items if isinstance(item, str)}
    too_long = {name for name in names if len(name) > GROUP_NAME_MAX}
    if too_long:
        log.warning("group names too long, ignored", extra={"groups": sorted(too_long)})
    return sorted(name for name in names - too_long if name)


def group_names_from_header(value: str) -> list[str]:
    """A proxy's groups header: names separated by commas."""
    return group_names_from_claim(value.split(","))


def sync_groups(user: Any, names: Iterable[str]) -> None:
    """Make the person a member of exactly the named groups.

    The provider owns membership while its groups are configured
    (GLMWEB_OIDC_GROUPS_CLAIM, GLMWEB_TRUSTED_GROUPS_HEADER): missing groups
    are created, and the person leaves every group the provider did not name,
    including one an admin added by hand. Run at each sign-in.
    """
    wanted = set(names)
    with transaction.atomic():
        existing = {group.name: group for group in Group.objects.filter(name__in=wanted)}
        for name in sorted(wanted - existing.keys()):
            existing[name], _ = Group.objects.get_or_create(name=name)
        user.groups.set(existing.values())
