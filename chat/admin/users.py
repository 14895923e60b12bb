"""People: their own limits, and the user list with its usage link, limits inline and
the sign-up approval filter and action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User as DefaultUser
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from chat.admin import cells
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
    # Short headers and figures, so that every limit fits a laptop screen.
    list_display = ("person", "day_tokens", "month_tokens", "per_minute", "at_once", "budget")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)

    @admin.display(description="person", ordering="user__username")
    def person(self, limits: UserLimits) -> str:
        return cells.ellipsized(limits.user.get_username())

    day_tokens = cells.limit_column("tokens_per_day", "tokens a day")
    month_tokens = cells.limit_column("tokens_per_month", "tokens a month")
    per_minute = cells.limit_column("replies_per_minute", "replies a minute")
    at_once = cells.limit_column("concurrent_generations", "at once")
    budget = cells.limit_column("monthly_budget", "money a month")


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
    # Names and addresses cut to a width, first and last name as one column: the
    # table fits a laptop screen beside the filters.
    list_display = ("login", "full_name", "address", "staff", "active", "usage_link")
    list_display_links = ("login",)
    # Groups as checkboxes: a team has a handful, and Django's two-box picker labels
    # its icons with aria-label on a bare span (axe: aria-prohibited-attr).
    filter_horizontal = ("user_permissions",)
    actions = [approve_signups]

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField[Any] | None:
        if db_field.name == "groups":
            kwargs["widget"] = forms.CheckboxSelectMultiple
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="username", ordering="username")
    def login(self, user: Any) -> str:
        return cells.ellipsized(user.get_username())

    @admin.display(description="name", ordering="last_name")
    def full_name(self, user: Any) -> str:
        return cells.ellipsized(user.get_full_name()) if user.get_full_name() else "—"

    @admin.display(description="email", ordering="email")
    def address(self, user: Any) -> str:
        return cells.ellipsized(user.email) if user.email else "—"

    @admin.display(description="staff", boolean=True, ordering="is_staff")
    def staff(self, user: Any) -> bool:
        return bool(user.is_staff)

    @admin.display(description="active", boolean=True, ordering="is_active")
    def active(self, user: Any) -> bool:
        return bool(user.is_active)

    @admin.display(description="usage")
    def usage_link(self, user: Any) -> str:
        url = reverse("admin:chat_dailyusage_user", args=[user.pk])
        return format_html('<a href="{}">usage</a>', url)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, GlmwebUserAdmin)
