"""Conversation review: read-only and audited.

Conversation text is shown only while GLMWEB_ADMIN_CAN_READ_CONVERSATIONS is
on. Opening someone else's conversation writes a `ConversationAccess` row,
which no admin can edit or delete here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from chat.admin.readonly import ReadOnly
from chat.markdown import render as render_markdown
from chat.models import Conversation, ConversationAccess, Message

HIDDEN = "(hidden)"

if TYPE_CHECKING:
    # The stubs' ModelAdmin is generic over its model; Django's own class is not subscriptable.
    ConversationAdminBase = admin.ModelAdmin[Conversation]
    AccessAdminBase = admin.ModelAdmin[ConversationAccess]
else:
    ConversationAdminBase = AccessAdminBase = admin.ModelAdmin


def can_read_conversations() -> bool:
    return settings.GLMWEB_ADMIN_CAN_READ_CONVERSATIONS


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
        value = self.value()
        match value:
            case "any":
                rated = rated.filter(rating__isnull=False)
            case "1" | "-1":
                rated = rated.filter(rating=int(value))
            case "comment":
                rated = rated.exclude(feedback_comment="")
            case _:
                return queryset
        return queryset.filter(Exists(rated))


@admin.register(Conversation)
class ConversationAdmin(ConversationAdminBase):
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
    shown = {m.id for m in conversation.shown_branch(messages)}
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
class ConversationAccessAdmin(ReadOnly, AccessAdminBase):
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

    @admin.display(description="conversation")
    def conversation_link(self, access: ConversationAccess) -> str:
        if access.conversation_id is None:
            return "(deleted)"
        url = reverse("admin:chat_conversation_change", args=[access.conversation_id])
        return format_html('<a href="{}">{}</a>', url, access.conversation_title or "open")
