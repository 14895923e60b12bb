from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from chat.web.views.accounts import signup_policy


def glmweb(request: HttpRequest) -> dict[str, Any]:
    return {
        "signup_open": signup_policy() != "closed",
        "demo_model": settings.GLMWEB_DEMO_MODEL,
    }
