"""Groups with their models and limits: Django's group page, with the policy inline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from chat.models import GroupPolicy

if TYPE_CHECKING:
    # The stubs' admin classes are generic over their model; Django's own are not subscriptable.
    GroupPolicyInlineBase = admin.StackedInline[GroupPolicy, Group]
    GroupAdminBase = GroupAdmin
else:
    GroupPolicyInlineBase = admin.StackedInline
    GroupAdminBase = GroupAdmin


class GroupPolicyInline(GroupPolicyInlineBase):
    model = GroupPolicy
    can_delete = False
    filter_horizontal = ("allowed_models",)
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "allowed_models",
                    "tokens_per_day",
                    "tokens_per_month",
                    "replies_per_minute",
                    "concurrent_generations",
                    "monthly_budget",
                ],
                "description": (
                    "Each value is per person in the group. Empty: not set by this group; "
                    "0: unlimited. A person in several groups gets the most generous value "
                    "of each and every model any of them allows; a person's own limits win."
                ),
            },
        )
    ]


class GlmwebGroupAdmin(GroupAdminBase):
    inlines = [GroupPolicyInline]
    list_display = ("name", "members", "budget")
    list_select_related = ("policy",)

    @admin.display(description="members")
    def members(self, group: Group) -> int:
        return group.user_set.count()

    @admin.display(description="monthly budget")
    def budget(self, group: Group) -> str:
        policy: GroupPolicy | None = getattr(group, "policy", None)
        if policy is None or policy.monthly_budget is None:
            return "—"
        return "unlimited" if not policy.monthly_budget else f"{policy.monthly_budget}"


if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, GlmwebGroupAdmin)
