from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat.web.views import accounts, health

urlpatterns = [
    path("admin/login/", accounts.admin_login),
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    # allauth's social flow under accounts/oidc/ (its login and logout names
    # resolve to ours above); nothing of it is served while SSO is off.
    *([path("accounts/", include("allauth.urls"))] if settings.GLMWEB_OIDC_ISSUER else []),
    path("healthz", health.healthz, name="healthz"),
    path("", include("chat.web.urls")),
]
