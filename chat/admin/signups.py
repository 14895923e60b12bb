"""Sign-ups waiting for approval (GLMWEB_SIGNUP=approval) and the action that approves them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from chat.models import SignupApproval

User = get_user_model()

if TYPE_CHECKING:
    # The stubs' ModelAdmin is generic over its model; Django's own class is not subscriptable.
    SignupApprovalAdminBase = admin.ModelAdmin[SignupApproval]
else:
    SignupApprovalAdminBase = admin.ModelAdmin


class PendingApprovalFilter(admin.SimpleListFilter):
    title = "sign-up approval"
    parameter_name = "approval"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "Waiting for approval")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(is_active=False, signup_approval__approved_at__isnull=True)
        return queryset


@admin.action(description="Approve the selected sign-ups (activate the accounts)")
def approve_signups(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    users = (
        queryset
        if queryset.model is User
        else User.objects.filter(pk__in=queryset.values("user_id"))
    )
    with transaction.atomic():
        count = users.filter(is_active=False).update(is_active=True)
        SignupApproval.objects.filter(user__in=users, approved_at__isnull=True).update(
            approved_at=timezone.now(), approved_by=request.user
        )
    modeladmin.message_user(request, f"Approved {count} account(s).", messages.SUCCESS)


@admin.register(SignupApproval)
class SignupApprovalAdmin(SignupApprovalAdminBase):
    list_display = ("user", "requested_at", "approved_at", "approved_by")
    list_filter = (("approved_at", admin.EmptyFieldListFilter),)
    list_select_related = ("user", "approved_by")
    search_fields = ("user__username",)
    actions = [approve_signups]
    readonly_fields = ("user", "requested_at", "approved_at", "approved_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
