"""Sign-in by a header that an authenticating proxy sets (oauth2-proxy,
Authelia, Cloudflare Access): Django's remote-user middleware and backend,
believed only from GLMWEB_TRUSTED_PROXIES.

The persistent variant: the sign-in lands in the session, so the chat socket
(which sends the session cookie, not the header) knows the person too.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import PersistentRemoteUserMiddleware
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from chat.accounts.adapter import refused, respond_inactive
from chat.accounts.groups import group_names_from_header, sync_groups
from chat.models import SignupApproval, SignupPolicy

log = logging.getLogger(__name__)


def meta_key(header: str) -> str:
    """Where Django's request.META keeps an HTTP header."""
    return "HTTP_" + header.upper().replace("-", "_")


def from_trusted_proxy(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    return any(address in network for network in settings.GLMWEB_TRUSTED_PROXIES)


def is_valid_username(name: str) -> bool:
    user_model: Any = get_user_model()
    max_length = user_model._meta.get_field(user_model.USERNAME_FIELD).max_length
    try:
        UnicodeUsernameValidator()(name)
    except ValidationError:
        return False
    return bool(len(name) <= max_length)


class TrustedHeaderMiddleware(PersistentRemoteUserMiddleware):
    """Signs in the person the proxy names; from any other address the header is ignored."""

    # Django 5.2's async path reads META["HTTP_" + header] and the sync one
    # META[header]; sync only, one spelling holds.
    async_capable = False  # type: ignore[assignment]

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        # The stubs call it a class variable; Django reads it only through self.
        self.header = meta_key(settings.GLMWEB_TRUSTED_USER_HEADER)  # type: ignore[misc]
        self.headers = [self.header]
        if settings.GLMWEB_TRUSTED_GROUPS_HEADER:
            self.headers.append(meta_key(settings.GLMWEB_TRUSTED_GROUPS_HEADER))

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.header in request.META and not from_trusted_proxy(request):
            log.warning(
                "sign-in header from an untrusted address ignored",
                extra={"ip": request.META.get("REMOTE_ADDR"), "header": self.header},
            )
            for key in self.headers:
                request.META.pop(key, None)
        name = str(request.META.get(self.header, "")).strip()
        if self.header in request.META:
            if not is_valid_username(name):
                log.warning("sign-in header names no valid user", extra={"header": self.header})
                return refused(request, "The sign-in proxy sent a user name we cannot use.", 400)
            request.META[self.header] = name
        self.process_request(request)
        if name and not request.user.is_authenticated:
            return refuse_unknown_or_inactive(request, name)
        # Sync only (async_capable is false): never an awaitable here.
        return cast(HttpResponseBase, self.get_response(request))


def refuse_unknown_or_inactive(request: HttpRequest, name: str) -> HttpResponse:
    user_model: Any = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: name}).first()
    if user is not None:
        return respond_inactive(request, user)
    return refused(request, f"There is no account for {name} here, and sign-up is closed.")


class TrustedHeaderBackend(RemoteUserBackend):
    """The proxy's user: new ones follow the sign-up policy; groups from its header."""

    @property
    def create_unknown_user(self) -> bool:  # type: ignore[override]
        return SignupPolicy.current() != SignupPolicy.CLOSED

    def configure_user(self, request: Any, user: Any, created: bool = True) -> Any:
        if user is None:
            return None
        if created:
            user.set_unusable_password()
            if SignupPolicy.current() == SignupPolicy.APPROVAL:
                SignupApproval.hold(user)
            else:
                user.save()
            log.info("trusted header created an account", extra={"user": user.pk})
        if settings.GLMWEB_TRUSTED_GROUPS_HEADER and request is not None:
            header = str(request.META.get(meta_key(settings.GLMWEB_TRUSTED_GROUPS_HEADER), ""))
            sync_groups(user, group_names_from_header(header))
        return user
