"""Accounts: sign-up (open, closed or with approval) and a login that slows down
password guessing."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chat.models import SignupApproval
from chat.web.forms import SignupForm

log = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many failed logins. Please wait a few minutes and try again."
PENDING_MESSAGE = (
    "Your account is waiting for an administrator's approval. "
    "You can log in as soon as it is approved."
)


def signup_policy() -> str:
    """open, approval or closed (GLMWEB_SIGNUP; GLMWEB_SIGNUP_OPEN=false also closes it)."""
    return settings.GLMWEB_SIGNUP if settings.GLMWEB_SIGNUP_OPEN else "closed"


def signup(request: HttpRequest) -> HttpResponse:
    policy = signup_policy()
    if policy == "closed":
        raise Http404("Sign-up is closed")
    if request.user.is_authenticated:
        return redirect("chat:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if policy == "approval":
            # Inactive until approved: Django's login, session and the chat
            # socket all refuse inactive users, so nothing else must remember to.
            with transaction.atomic():
                user = form.save(commit=False)
                user.is_active = False
                user.save()
                SignupApproval.objects.create(user=user)
            log.info("sign-up waiting for approval", extra={"user": user.pk})
            return render(request, "registration/signup_pending.html", status=201)
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:home")
    context = {"form": form, "approval_needed": policy == "approval"}
    return render(request, "registration/signup.html", context)


def is_waiting_for_approval(username: str, password: str) -> bool:
    """Right password of an account that was never approved: say so instead of "wrong"."""
    user = (
        get_user_model()
        ._default_manager.filter(
            **{get_user_model().USERNAME_FIELD: username},
            is_active=False,
            signup_approval__approved_at__isnull=True,
        )
        .first()
    )
    return user is not None and user.check_password(password)


class ThrottledLoginView(LoginView):
    """Counts failures per username and per client address (in the shared cache)."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        keys = _throttle_keys(request)
        if any(cache.get(key, 0) >= settings.GLMWEB_LOGIN_FAILURES for key in keys):
            log.warning("login throttled", extra={"ip": _client_address(request)})
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, THROTTLED_MESSAGE)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        if is_waiting_for_approval(form.data.get("username", ""), form.data.get("password", "")):
            form.errors.clear()
            form.add_error(None, PENDING_MESSAGE)
            return super().form_invalid(form)
        for key in _throttle_keys(self.request):
            cache.add(key, 0, settings.GLMWEB_LOGIN_WINDOW_SECONDS)
            cache.incr(key)
        return super().form_invalid(form)


def _throttle_keys(request: HttpRequest) -> list[str]:
    return throttle_keys(request.POST.get("username", ""), _client_address(request))


def throttle_keys(username: str, address: str) -> list[str]:
    user_hash = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:user:{user_hash}", f"login-fail:ip:{address}"]


def _client_address(request: HttpRequest) -> str:
    # Behind the proxy, the proxy sets X-Real-IP (docs/deploy.md); REMOTE_ADDR
    # is then the proxy itself.
    direct = str(request.META.get("REMOTE_ADDR", ""))
    if settings.USE_X_FORWARDED_HOST:
        return str(request.META.get("HTTP_X_REAL_IP", direct))
    return direct
