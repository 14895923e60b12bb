from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(seed_models, sender=self)


def seed_models(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    """The admin's model rows start as GLMWEB_MODELS, on a fresh database.

    After every migrate (and each flush of a test database), but only while
    the table is empty: the admin's edits stay.
    """
    from django.conf import settings

    from chat.models import ChatModel

    ChatModel.objects.using(using).seed(settings.GLMWEB_MODELS)


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin app with glmweb's site (its landing page: glmweb.admin_site)."""

    default = False  # named in full in INSTALLED_APPS; "chat" alone is ChatConfig
    default_site = "glmweb.admin_site.AdminSite"
