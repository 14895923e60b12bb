"""Announcements: write a banner for everyone or some groups, see its window, audience,
how many dismissed it, and a preview of the body as people will see it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import formats
from django.utils.html import format_html

from chat.models import Announcement

if TYPE_CHECKING:
    # The stubs' ModelAdmin is generic over its model; Django's own class is not subscriptable.
    AnnouncementAdminBase = admin.ModelAdmin[Announcement]
else:
    AnnouncementAdminBase = admin.ModelAdmin


@admin.register(Announcement)
class AnnouncementAdmin(AnnouncementAdminBase):
    list_display = ("title", "level", "window", "audience", "dismissed")
    list_filter = ("level", "groups")
    search_fields = ("title", "body")
    filter_horizontal = ("groups",)
    readonly_fields = ("preview", "created_at")
    fields = ("title", "level", "body", "preview", "starts_at", "ends_at", "groups", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Announcement]:
        # distinct: the count must not multiply by the groups joined in by the filter.
        return (
            super()
            .get_queryset(request)
            .prefetch_related("groups")
            .annotate(dismissal_count=Count("dismissals", distinct=True))
        )

    @admin.display(description="shown")
    def window(self, announcement: Announcement) -> str:
        start, end = announcement.starts_at, announcement.ends_at
        if start is None and end is None:
            return "always"
        since = f"from {formats.date_format(start, 'SHORT_DATETIME_FORMAT')}" if start else ""
        until = f"until {formats.date_format(end, 'SHORT_DATETIME_FORMAT')}" if end else ""
        return " ".join(part for part in (since, until) if part)

    @admin.display(description="audience")
    def audience(self, announcement: Announcement) -> str:
        names = sorted(group.name for group in announcement.groups.all())
        return ", ".join(names) if names else "everyone"

    @admin.display(description="dismissed by", ordering="dismissal_count")
    def dismissed(self, announcement: Announcement) -> int:
        return getattr(announcement, "dismissal_count", 0)

    @admin.display(description="preview")
    def preview(self, announcement: Announcement) -> str:
        if not announcement.body:
            return "Save to see the preview."
        return format_html('<div class="announcement-preview">{}</div>', announcement.body_html())
