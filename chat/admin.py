"""The admin: conversation review (read-only, audited), token usage, limits, sign-ups.

Conversation text is shown only while GLMWEB_ADMIN_CAN_READ_CONVERSATIONS is
on; usage figures always are. Opening someone else's conversation writes a
`ConversationAccess` row, which no admin can edit or delete here.
"""

from __future__ import annotations

import csv
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.html import format_html

from chat import limits, usage
from chat.generation import shown_branch
from chat.markdown import render as render_markdown
from chat.models import (
    Conversation,
    ConversationAccess,
    DailyUsage,
    Message,
    SignupApproval,
    UserLimits,
)

User = get_user_model()
HIDDEN = "(hidden)"
USAGE_PAGE_SIZE = 100


def can_read_conversations() -> bool:
    return settings.GLMWEB_ADMIN_CAN_READ_CONVERSATIONS


# --- Conversation review ------------------------------------------------------------


def _per_conversation(aggregate: Any) -> Subquery:
    """A figure over one conversation's messages, computed only for the rows shown."""
    messages = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by()
        .values("conversation")
        .annotate(value=aggregate)
        .values("value")
    )
    return Subquery(messages, output_field=IntegerField())


class ReplyStatusFilter(admin.SimpleListFilter):
    title = "reply status"
    parameter_name = "reply_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (status, f"has a {label.lower()} reply")
            for status, label in Message.Status.choices
            if status != Message.Status.COMPLETE
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        replies = Message.objects.filter(
            conversation=OuterRef("pk"), role=Message.Role.ASSISTANT, status=self.value()
        )
        return queryset.filter(Exists(replies))


class RatingFilter(admin.SimpleListFilter):
    """Conversations whose owner rated a reply: where to look for good and bad answers."""

    title = "reply feedback"
    parameter_name = "rating"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("any", "has rated replies"),
            ("1", "has a thumbs up"),
            ("-1", "has a thumbs down"),
            ("comment", "has a feedback comment"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        rated = Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.ASSISTANT)
        match self.value():
            case "any":
                rated = rated.filter(rating__isnull=False)
            case "1" | "-1":
                rated = rated.filter(rating=int(self.value()))
            case "comment":
                rated = rated.exclude(feedback_comment="")
            case _:
                return queryset
        return queryset.filter(Exists(rated))


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Read-only: admins review conversations, they never change what anyone said."""

    list_display = (
        "title_shown",
        "owner",
        "model",
        "message_count",
        "tokens",
        "feedback",
        "updated_at",
    )
    list_select_related = ("owner",)
    list_filter = (
        ("updated_at", admin.DateFieldListFilter),
        "model",
        ReplyStatusFilter,
        RatingFilter,
    )
    date_hierarchy = None
    show_full_result_count = False  # a second COUNT over all conversations on every page
    change_form_template = "admin/chat/conversation/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(
                message_count=_per_conversation(Count("id")),
                tokens=_per_conversation(Sum("total_tokens")),
                thumbs_up=_per_conversation(Count("id", filter=Q(rating=1))),
                thumbs_down=_per_conversation(Count("id", filter=Q(rating=-1))),
            )
        )

    search_help_text = "Owner or title. Start with text: to search inside the messages (slower)."

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        if can_read_conversations():
            return ("owner__username", "title")
        return ("owner__username",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # Message text only when asked for: it reads every message (seconds at a
        # million), while owner and title searches stay fast.
        if search_term.startswith("text:"):
            if not can_read_conversations():
                return queryset.none(), False
            matching = Message.objects.filter(
                conversation=OuterRef("pk"), content__icontains=search_term[5:].strip()
            )
            return queryset.filter(Exists(matching)), False
        return super().get_search_results(request, queryset, search_term)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = ("owner", "model", "created_at", "updated_at", "message_count", "tokens")
        if can_read_conversations():
            return ("title", *fields, "system_prompt", "params")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting shows the title (and deleting blind makes no sense) when reading is off.
        return can_read_conversations() and super().has_delete_permission(request, obj)

    @admin.display(description="title", ordering="title")
    def title_shown(self, conversation: Conversation) -> str:
        return str(conversation) if can_read_conversations() else HIDDEN

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count or 0  # type: ignore[attr-defined]

    @admin.display(description="tokens", ordering="tokens")
    def tokens(self, conversation: Conversation) -> int:
        return conversation.tokens or 0  # type: ignore[attr-defined]

    @admin.display(description="feedback")
    def feedback(self, conversation: Conversation) -> str:
        up = conversation.thumbs_up or 0  # type: ignore[attr-defined]
        down = conversation.thumbs_down or 0  # type: ignore[attr-defined]
        return f"{up} up · {down} down" if up or down else ""

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Conversation | None = None,
    ) -> HttpResponse:
        if obj is not None:
            shown = can_read_conversations()
            if obj.owner_id != request.user.pk:
                record_access(request.user, obj, content_shown=shown)
            label = str(obj) if shown else f"Conversation {obj.pk}"
            context |= {
                "transcript": review_transcript(obj, with_text=shown),
                "content_shown": shown,
                "conversation_label": label,
                "subtitle": label,
            }
        return super().render_change_form(request, context, add, change, form_url, obj)


def record_access(admin_user: Any, conversation: Conversation, *, content_shown: bool) -> None:
    ConversationAccess.objects.create(
        admin=admin_user,
        admin_username=admin_user.get_username(),
        owner_id=conversation.owner_id,
        owner_username=conversation.owner.get_username(),
        conversation=conversation,
        conversation_title=str(conversation) if content_shown else "",
        content_shown=content_shown,
    )


def review_transcript(conversation: Conversation, *, with_text: bool) -> list[dict[str, Any]]:
    """Every message, oldest first (one query), marked when not on the branch shown."""
    messages = list(conversation.messages.order_by("created_at"))
    shown = {m.id for m in shown_branch(conversation, messages)}
    return [
        {
            "message": message,
            "on_branch": message.id in shown,
            "html": render_markdown(message.content) if with_text else None,
            "reasoning_html": render_markdown(message.reasoning)
            if with_text and message.reasoning
            else None,
        }
        for message in messages
    ]


@admin.register(ConversationAccess)
class ConversationAccessAdmin(admin.ModelAdmin):
    """The audit trail: written by the review page, read-only for everyone."""

    list_display = (
        "accessed_at",
        "admin_username",
        "owner_username",
        "conversation_link",
        "content_shown",
    )
    list_filter = (("accessed_at", admin.DateFieldListFilter), "content_shown")
    search_fields = ("admin_username", "owner_username")
    date_hierarchy = "accessed_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="conversation")
    def conversation_link(self, access: ConversationAccess) -> str:
        if access.conversation_id is None:
            return "(deleted)"
        url = reverse("admin:chat_conversation_change", args=[access.conversation_id])
        return format_html('<a href="{}">{}</a>', url, access.conversation_title or "open")


# --- Token usage ----------------------------------------------------------------------

COLUMNS = [
    ("user", "User"),
    ("today", "Today"),
    ("week", "7 days"),
    ("month30", "30 days"),
    ("all", "All time"),
    ("conversations", "Conversations"),
    ("replies", "Replies"),
    ("last_active", "Last active"),
    ("quota", "Quota used"),
]


@admin.register(DailyUsage)
class UsageAdmin(admin.ModelAdmin):
    """Token usage per person; the ledger's own rows are never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("export.csv", wrap(self.export_view), name="chat_dailyusage_export"),
            path("user/<int:user_id>/", wrap(self.user_view), name="chat_dailyusage_user"),
            *super().get_urls(),
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _people(self, request: HttpRequest) -> tuple[list[usage.UserUsage], dict[str, Any]]:
        start = parse_date(request.GET.get("from", "") or "") if request.GET.get("from") else None
        end = parse_date(request.GET.get("to", "") or "") if request.GET.get("to") else None
        order = request.GET.get("o", "today")
        if order not in usage.SORT_KEYS:
            order = "today"
        descending = request.GET.get("dir", "desc" if order != "user" else "asc") == "desc"
        people = usage.all_users(start, end)
        people.sort(key=usage.SORT_KEYS[order], reverse=descending)
        return people, {"start": start, "end": end, "order": order, "descending": descending}

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._require_view(request)
        people, state = self._people(request)
        page = Paginator(people, USAGE_PAGE_SIZE).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Token usage",
            "opts": self.model._meta,
            "page": page,
            "people": page.object_list,
            "columns": _sort_links(request, COLUMNS, state),
            "span_column": _sort_links(request, [("span", "Date range")], state)[0],
            "totals": _totals(people),
            "query": request.GET.urlencode(),
            "today": limits.today(),
            "time_zone": timezone.get_current_timezone_name(),
            **state,
        }
        return TemplateResponse(request, "admin/chat/usage/index.html", context)

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        self._require_view(request)
        people, state = self._people(request)
        response = StreamingHttpResponse(_csv_lines(people, state), content_type="text/csv")
        name = f"glmweb-usage-{limits.today():%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def user_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        self._require_view(request)
        person = get_object_or_404(User, pk=user_id)
        days = usage.daily(user_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Token usage of {person.get_username()}",
            "opts": self.model._meta,
            "person": person,
            "windows": usage.windows_for(user_id),
            "days": days,
            "chart": usage.chart(days),
            "models": usage.by_model(user_id),
            "limits": limits.status_for(user_id),
            "conversations": Conversation.objects.filter(owner_id=user_id).count(),
        }
        return TemplateResponse(request, "admin/chat/usage/user.html", context)


def _sort_links(
    request: HttpRequest, columns: list[tuple[str, str]], state: dict[str, Any]
) -> list[dict[str, Any]]:
    links = []
    for key, label in columns:
        query = request.GET.copy()
        query.pop("p", None)
        query["o"] = key
        active = state["order"] == key
        query["dir"] = "asc" if active and state["descending"] else "desc"
        links.append(
            {
                "key": key,
                "label": label,
                "url": "?" + query.urlencode(),
                "active": active,
                "descending": state["descending"],
                "group": key in {"today", "week", "month30", "all", "span"},
            }
        )
    return links


def _totals(people: list[usage.UserUsage]) -> dict[str, int]:
    return {
        "today": sum(p.windows.today.total for p in people),
        "week": sum(p.windows.week.total for p in people),
        "month30": sum(p.windows.month30.total for p in people),
        "all": sum(p.windows.all_time.total for p in people),
        "estimated": sum(p.windows.estimated_tokens for p in people),
        "replies": sum(p.windows.replies for p in people),
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(people: list[usage.UserUsage], state: dict[str, Any]) -> Any:
    writer = csv.writer(_Echo())
    header = ["user_id", "username", "active"]
    for window in ("today", "7d", "30d", "all_time"):
        header += [f"{window}_prompt", f"{window}_completion", f"{window}_total"]
    span = state["start"] or state["end"]
    if span:
        header += ["range_prompt", "range_completion", "range_total", "range_replies"]
    header += [
        "estimated_tokens",
        "estimated_replies",
        "conversations",
        "replies",
        "last_active",
        "quota_day_percent",
        "quota_month_percent",
    ]
    yield writer.writerow(header)
    for p in people:
        w = p.windows
        row: list[Any] = [p.user_id, p.username, p.is_active]
        for tokens in (w.today, w.week, w.month30, w.all_time):
            row += [tokens.prompt, tokens.completion, tokens.total]
        if span and w.span is not None:
            row += [w.span.prompt, w.span.completion, w.span.total, p.span_replies]
        row += [
            w.estimated_tokens,
            w.estimated_replies,
            p.conversations,
            w.replies,
            p.last_active.isoformat() if p.last_active else "",
            "" if p.day_quota is None else p.day_quota,
            "" if p.month_quota is None else p.month_quota,
        ]
        yield writer.writerow(_no_formulas(row))


def _no_formulas(row: list[Any]) -> list[Any]:
    # A username like "=HYPERLINK(...)" must not become a formula in a spreadsheet.
    return [f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row]


# --- Limits, users and sign-up approval -------------------------------------------------


@admin.register(UserLimits)
class UserLimitsAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "tokens_per_day",
        "tokens_per_month",
        "replies_per_minute",
        "concurrent_generations",
    )
    list_select_related = ("user",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)


class UserLimitsInline(admin.StackedInline):
    model = UserLimits
    can_delete = False
    verbose_name_plural = "limits (empty: the site default; 0: unlimited)"


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


class GlmwebUserAdmin(UserAdmin):
    inlines = [UserLimitsInline]
    list_filter = (PendingApprovalFilter, *UserAdmin.list_filter)
    list_display = (*UserAdmin.list_display, "is_active", "usage_link")
    actions = [approve_signups]

    @admin.display(description="usage")
    def usage_link(self, user: Any) -> str:
        url = reverse("admin:chat_dailyusage_user", args=[user.pk])
        return format_html('<a href="{}">usage</a>', url)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, GlmwebUserAdmin)


@admin.register(SignupApproval)
class SignupApprovalAdmin(admin.ModelAdmin):
    list_display = ("user", "requested_at", "approved_at", "approved_by")
    list_filter = (("approved_at", admin.EmptyFieldListFilter),)
    list_select_related = ("user", "approved_by")
    search_fields = ("user__username",)
    actions = [approve_signups]
    readonly_fields = ("user", "requested_at", "approved_at", "approved_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
