"""glmweb's admin site: Django's, with a landing page that shows today at a glance.

Installed as Django documents for replacing the default site: `chat.apps.AdminConfig`
names this class as `default_site`, so `admin.site` and every `@admin.register` use it.
It lives outside chat.admin because importing that package registers the ModelAdmins
on `admin.site`, which would ask for this class while it is being imported.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from chat.usage.dashboard import dashboard


class AdminSite(admin.AdminSite):
    site_header = "glmweb admin"
    site_title = "glmweb admin"
    index_title = "Today"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        context = dict(extra_context or {})
        # The figures name people and their spending: for those who may see usage.
        if request.user.has_perm("chat.view_dailyusage"):
            context["dashboard"] = dashboard(timezone.now(), timezone.localdate())
        return super().index(request, context)
