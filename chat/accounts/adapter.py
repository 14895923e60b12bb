"""django-allauth's hooks: the sign-up policy, group sync, and our own pages.

allauth runs only the social flow here (SOCIALACCOUNT_ONLY): the password
login and sign-up stay in chat.web. Accounts are found by the provider's
subject (allauth's SocialAccount uid); settings turn off every match by e-mail.
"""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chat.accounts.groups import group_names_from_claim, sync_groups
from chat.models import SignupApproval, SignupPolicy

log = logging.getLogger(__name__)


def refused(request: HttpRequest, reason: str, status: int = 403) -> HttpResponse:
    return render(request, "registration/sign_in_refused.html", {"reason": reason}, status=status)


def respond_inactive(request: HttpRequest, user: Any) -> HttpResponse:
    """A new account waiting for approval, or one an admin turned off."""
    if SignupApproval.is_pending(user):
        return render(request, "registration/signup_pending.html", status=403)
    return refused(request, "This account is turned off. Ask an administrator.")


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth has no types
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return SignupPolicy.current() != SignupPolicy.CLOSED

    def respond_user_inactive(self, request: HttpRequest, user: Any) -> HttpResponse:
        return respond_inactive(request, user)

    def add_message(self, *args: Any, **kwargs: Any) -> None:
        # Our pages show no flash messages; kept, they would pile up in the session.
        return None


class SocialAccountAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc]
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return SignupPolicy.current() != SignupPolicy.CLOSED

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        # A returning person: allauth has found the account by subject and
        # refreshed its claims. A new one gets its groups in save_user.
        if sociallogin.is_existing:
            sync_claimed_groups(sociallogin)

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> Any:
        with transaction.atomic():
            user = super().save_user(request, sociallogin, form)
            if SignupPolicy.current() == SignupPolicy.APPROVAL:
                SignupApproval.hold(user)
            sync_claimed_groups(sociallogin)
        log.info(
            "single sign-on created an account",
            extra={"user": user.pk, "active": user.is_active},
        )
        return user


def claims_of(sociallogin: SocialLogin) -> dict[str, Any]:
    """The provider's claims: userinfo's, else the ID token's (as allauth picks)."""
    data = sociallogin.account.extra_data or {}
    return data.get("userinfo") or data.get("id_token") or {}


def sync_claimed_groups(sociallogin: SocialLogin) -> None:
    claim = settings.GLMWEB_OIDC_GROUPS_CLAIM
    if claim and sociallogin.user is not None:
        sync_groups(sociallogin.user, group_names_from_claim(claims_of(sociallogin).get(claim)))
