"""Sign-up and a login that slows down password guessing."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chat.forms import SignupForm

log = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many failed logins. Please wait a few minutes and try again."


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.GLMWEB_SIGNUP_OPEN:
        raise Http404("Sign-up is closed")
    if request.user.is_authenticated:
        return redirect("chat:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form})


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

    def form_invalid(self, form: Form) -> HttpResponse:
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
    if settings.USE_X_FORWARDED_HOST:
        return request.META.get("HTTP_X_REAL_IP", request.META.get("REMOTE_ADDR", ""))
    return request.META.get("REMOTE_ADDR", "")
