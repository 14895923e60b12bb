"""Announcements (issue 20): banners for everyone or some groups, and who dismissed which."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("chat", "0008_worker_heartbeat"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Announcement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "title",
                    models.CharField(
                        help_text="The banner's heading, and its name for screen readers.",
                        max_length=120,
                    ),
                ),
                (
                    "body",
                    models.TextField(
                        help_text="Markdown. Sanitized when shown: no HTML, scripts or images; links to http, https and mailto only."
                    ),
                ),
                (
                    "level",
                    models.CharField(
                        choices=[("info", "information"), ("warning", "warning")],
                        default="info",
                        help_text="Warning banners stand out in colour.",
                        max_length=16,
                    ),
                ),
                (
                    "starts_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="Shown from this time. Empty: as soon as it is saved.",
                        null=True,
                    ),
                ),
                (
                    "ends_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="Shown until this time. Empty: until deleted.",
                        null=True,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "groups",
                    models.ManyToManyField(
                        blank=True,
                        help_text="Shown to members of these groups only. Empty: everyone.",
                        related_name="announcements",
                        to="auth.group",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.CreateModel(
            name="AnnouncementDismissal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("dismissed_at", models.DateTimeField(auto_now_add=True)),
                (
                    "announcement",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dismissals",
                        to="chat.announcement",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="announcement_dismissals",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="announcement",
            name="dismissed_by",
            field=models.ManyToManyField(
                blank=True,
                related_name="dismissed_announcements",
                through="chat.AnnouncementDismissal",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="announcementdismissal",
            constraint=models.UniqueConstraint(
                fields=("announcement", "user"), name="one_dismissal_per_person"
            ),
        ),
    ]
