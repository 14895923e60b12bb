from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def glmweb(request: HttpRequest) -> dict[str, Any]:
    return {
        "signup_open": settings.GLMWEB_SIGNUP_OPEN,
        "demo_model": settings.GLMWEB_DEMO_MODEL,
    }
