"""People: their own limits, and the user list with its usage link, limits inline and
the sign-up approval filter and action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User as DefaultUser
from django.urls import reverse
from django.utils.html import format_html

from chat.admin.signups import PendingApprovalFilter, approve_signups
from chat.models import UserLimits

User = get_user_model()

if TYPE_CHECKING:
    # The stubs' admin classes are generic over their model; Django's own are not subscriptable.
    UserLimitsAdminBase = admin.ModelAdmin[UserLimits]
    UserLimitsInlineBase = admin.StackedInline[UserLimits, DefaultUser]
    UserAdminBase = UserAdmin[DefaultUser]
else:
    UserLimitsAdminBase = admin.ModelAdmin
    UserLimitsInlineBase = admin.StackedInline
    UserAdminBase = UserAdmin


@admin.register(UserLimits)
class UserLimitsAdmin(UserLimitsAdminBase):
    list_display = (
        "user",
        "tokens_per_day",
        "tokens_per_month",
        "replies_per_minute",
        "concurrent_generations",
        "monthly_budget",
    )
    list_select_related = ("user",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)


class UserLimitsInline(UserLimitsInlineBase):
    model = UserLimits
    can_delete = False
    verbose_name_plural = "limits (empty: their groups' or the site default; 0: unlimited)"


class GlmwebUserAdmin(UserAdminBase):
    inlines = [UserLimitsInline]
    # What an admin changes every day (active, staff, groups) stays open; Django's
    # tall permission picker and the dates fold away, so the limits below come
    # into view without scrolling past them.
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "groups")}),
        (
            "Permissions",
            {"classes": ("collapse",), "fields": ("is_superuser", "user_permissions")},
        ),
        ("Important dates", {"classes": ("collapse",), "fields": ("last_login", "date_joined")}),
    )
    # UserAdmin's own filters and columns, spelled out: read through the class, the
    # stubs can't tell their type.
    list_filter = (PendingApprovalFilter, "is_staff", "is_superuser", "is_active", "groups")
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_active",
        "usage_link",
    )
    actions = [approve_signups]

    @admin.display(description="usage")
    def usage_link(self, user: Any) -> str:
        url = reverse("admin:chat_dailyusage_user", args=[user.pk])
        return format_html('<a href="{}">usage</a>', url)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, GlmwebUserAdmin)
