"""Announcements: banners an admin writes for everyone or some groups, and who dismissed which."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils.safestring import SafeString

from chat.markdown import render as render_markdown


class AnnouncementQuerySet(models.QuerySet["Announcement"]):
    def addressed_to(self, user: AbstractBaseUser) -> AnnouncementQuerySet:
        """For everyone (no groups) or for a group the person is in; dismissed or not."""
        in_audience = Announcement.groups.through.objects.filter(
            announcement=OuterRef("pk"), group__user=user.pk
        )
        for_everyone = ~Exists(
            Announcement.groups.through.objects.filter(announcement=OuterRef("pk"))
        )
        return self.filter(for_everyone | Exists(in_audience))

    def showing_at(self, now: datetime) -> AnnouncementQuerySet:
        return self.filter(
            Q(starts_at__isnull=True) | Q(starts_at__lte=now),
            Q(ends_at__isnull=True) | Q(ends_at__gt=now),
        )

    def active_for(self, user: AbstractBaseUser, now: datetime) -> AnnouncementQuerySet:
        """The banners this person sees now, newest first: one query, however many there are."""
        dismissed = AnnouncementDismissal.objects.filter(announcement=OuterRef("pk"), user=user.pk)
        return (
            self.addressed_to(user)
            .showing_at(now)
            .exclude(Exists(dismissed))
            # Newest by when it began to show: one scheduled last week that starts
            # today goes above one that has been up since yesterday.
            .order_by(Coalesce("starts_at", "created_at").desc(), "-pk")
        )


class Announcement(models.Model):
    """A banner on the chat page, shown between its dates until each person dismisses it."""

    class Level(models.TextChoices):
        INFO = "info", "information"
        WARNING = "warning", "warning"

    title = models.CharField(
        max_length=120, help_text="The banner's heading, and its name for screen readers."
    )
    body = models.TextField(
        help_text="Markdown. Sanitized when shown: no HTML, scripts or images; links to "
        "http, https and mailto only."
    )
    level = models.CharField(
        max_length=16,
        choices=Level.choices,
        default=Level.INFO,
        help_text="Warning banners stand out in colour.",
    )
    starts_at = models.DateTimeField(
        null=True, blank=True, help_text="Shown from this time. Empty: as soon as it is saved."
    )
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text="Shown until this time. Empty: until deleted."
    )
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="announcements",
        help_text="Shown to members of these groups only. Empty: everyone.",
    )
    dismissed_by = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="AnnouncementDismissal",
        related_name="dismissed_announcements",
        blank=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AnnouncementQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must come after the start."})

    def dismiss_for(self, user: AbstractBaseUser) -> None:
        """Closed for this person on every device; dismissing twice is dismissing once."""
        AnnouncementDismissal.objects.get_or_create(announcement=self, user_id=user.pk)

    def body_html(self) -> SafeString:
        """The body as the page shows it: markdown, then an allow-list sanitizer."""
        return render_markdown(self.body)


class AnnouncementDismissal(models.Model):
    """One person closed one banner; it stays closed on every device."""

    announcement = models.ForeignKey(
        Announcement, on_delete=models.CASCADE, related_name="dismissals"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="announcement_dismissals"
    )
    dismissed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the index of active_for's "not dismissed by this person" subquery.
            models.UniqueConstraint(
                fields=["announcement", "user"], name="one_dismissal_per_person"
            ),
        ]

    def __str__(self) -> str:
        return f"User {self.user_id} dismissed announcement {self.announcement_id}"
