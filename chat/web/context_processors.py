from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from chat.web.views.accounts import signup_policy


def glmweb(request: HttpRequest) -> dict[str, Any]:
    return {
        "signup_open": signup_policy() != "closed" and settings.GLMWEB_PASSWORD_LOGIN,
        "password_login": settings.GLMWEB_PASSWORD_LOGIN,
        "demo_model": settings.GLMWEB_DEMO_MODEL,
        "sso_name": settings.GLMWEB_OIDC_NAME,
        "sso_login_url": reverse(
            "openid_connect_login", kwargs={"provider_id": settings.GLMWEB_OIDC_PROVIDER_ID}
        )
        if settings.GLMWEB_OIDC_ISSUER
        else "",
    }
