"""Accounts: sign-up (open, closed or with approval) and a login that slows down
password guessing. Single sign-on and the trusted header are chat.accounts'."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from chat.models import SignupApproval, SignupPolicy
from chat.web.forms import SignupForm

log = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many failed logins. Please wait a few minutes and try again."
PASSWORD_OFF_MESSAGE = "Password sign-in is turned off here. Use single sign-on."
PENDING_MESSAGE = (
    "Your account is waiting for an administrator's approval. "
    "You can log in as soon as it is approved."
)


def signup_policy() -> str:
    """open, approval or closed (GLMWEB_SIGNUP; GLMWEB_SIGNUP_OPEN=false also closes it)."""
    return SignupPolicy.current().value


def signup(request: HttpRequest) -> HttpResponse:
    policy = signup_policy()
    if policy == "closed" or not settings.GLMWEB_PASSWORD_LOGIN:
        raise Http404("Sign-up is closed")
    if request.user.is_authenticated:
        return redirect("chat:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if policy == "approval":
            waiting = SignupApproval.hold(form.save(commit=False))
            log.info("sign-up waiting for approval", extra={"user": waiting.user_id})
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
        if not settings.GLMWEB_PASSWORD_LOGIN:
            log.warning(
                "password login refused: turned off", extra={"ip": _client_address(request)}
            )
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, PASSWORD_OFF_MESSAGE)
            return self.render_to_response(self.get_context_data(form=form), status=403)
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


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's own password form, unless password sign-in is off: then ours."""
    if settings.GLMWEB_PASSWORD_LOGIN:
        return admin.site.login(request)
    next_url = request.GET.get("next", reverse("admin:index"))
    return redirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
