from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin app with glmweb's site (its landing page: glmweb.admin_site)."""

    default = False  # named in full in INSTALLED_APPS; "chat" alone is ChatConfig
    default_site = "glmweb.admin_site.AdminSite"
