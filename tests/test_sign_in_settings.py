"""Single sign-on and trusted-header settings: a bad value stops the start with
the variable's name; a production configuration passes `check --deploy`. And
the group rule both sign-ins share, and password sign-in turned off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from chat.accounts.groups import group_names_from_claim, group_names_from_header, sync_groups
from chat.web.views.accounts import PASSWORD_OFF_MESSAGE, throttle_keys
from tests.conftest import PASSWORD
from tests.servers import PRODUCTION, ROOT, deploy_check

SSO = {
    "GLMWEB_OIDC_ISSUER": "https://login.example.com/realms/staff",
    "GLMWEB_OIDC_CLIENT_ID": "glmweb",
    "GLMWEB_OIDC_CLIENT_SECRET": "s3cret",
}


def settings_error(**env: str) -> str:
    """What importing the settings says under this environment ('' when it starts)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GLMWEB_")}
    result = subprocess.run(
        [sys.executable, "-c", "import glmweb.settings"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stderr.strip().splitlines()[-1] if result.returncode else ""


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({**SSO, "GLMWEB_OIDC_ISSUER": "login.example.com"}, "GLMWEB_OIDC_ISSUER"),
        ({**SSO, "GLMWEB_OIDC_CLIENT_ID": ""}, "GLMWEB_OIDC_CLIENT_ID"),
        ({**SSO, "GLMWEB_OIDC_CLIENT_SECRET": ""}, "GLMWEB_OIDC_CLIENT_SECRET"),
        ({**SSO, "GLMWEB_OIDC_SCOPES": "profile email"}, "GLMWEB_OIDC_SCOPES"),
        (
            {**SSO, **PRODUCTION, "GLMWEB_OIDC_ISSUER": "http://login.example.com"},
            "GLMWEB_OIDC_ISSUER",
        ),
        ({"GLMWEB_TRUSTED_USER_HEADER": "X-Forwarded-User"}, "GLMWEB_TRUSTED_PROXIES"),
        (
            {"GLMWEB_TRUSTED_USER_HEADER": "X-User", "GLMWEB_TRUSTED_PROXIES": "10.0.0.300"},
            "GLMWEB_TRUSTED_PROXIES",
        ),
        (
            {"GLMWEB_TRUSTED_USER_HEADER": "X User", "GLMWEB_TRUSTED_PROXIES": "127.0.0.1"},
            "GLMWEB_TRUSTED_USER_HEADER",
        ),
        ({"GLMWEB_TRUSTED_GROUPS_HEADER": "X-Groups"}, "GLMWEB_TRUSTED_GROUPS_HEADER"),
        ({"GLMWEB_PASSWORD_LOGIN": "false"}, "GLMWEB_PASSWORD_LOGIN"),
        ({**SSO, "GLMWEB_PASSWORD_LOGIN": "maybe"}, "GLMWEB_PASSWORD_LOGIN"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str) -> None:
    error = settings_error(**env)
    assert error.startswith("django.core.exceptions.ImproperlyConfigured")
    assert variable in error


def test_good_values_start() -> None:
    assert settings_error(**SSO, GLMWEB_PASSWORD_LOGIN="false") == ""
    assert (
        settings_error(
            GLMWEB_TRUSTED_USER_HEADER="X-Forwarded-User",
            GLMWEB_TRUSTED_GROUPS_HEADER="X-Forwarded-Groups",
            GLMWEB_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8, ::1",
        )
        == ""
    )


def test_check_deploy_is_clean_with_single_sign_on_and_the_trusted_header() -> None:
    result = deploy_check(
        **SSO,
        GLMWEB_OIDC_GROUPS_CLAIM="groups",
        GLMWEB_PASSWORD_LOGIN="false",
        GLMWEB_TRUSTED_USER_HEADER="X-Forwarded-User",
        GLMWEB_TRUSTED_PROXIES="127.0.0.1",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("claim", "names"),
    [
        (["staff", "eng", "staff", " ops "], ["eng", "ops", "staff"]),
        ("staff", ["staff"]),
        (None, []),
        ([], []),
        ({"staff": True}, []),
        (["staff", 3, None, ""], ["staff"]),
        (["x" * 151, "eng"], ["eng"]),
    ],
)
def test_a_claim_names_groups(claim: object, names: list[str]) -> None:
    assert group_names_from_claim(claim) == names


def test_a_header_names_groups_separated_by_commas() -> None:
    assert group_names_from_header("eng, staff,,ops") == ["eng", "ops", "staff"]
    assert group_names_from_header("") == []


@pytest.mark.django_db
def test_sync_makes_the_person_a_member_of_exactly_the_named_groups(alice, bob) -> None:
    by_hand = Group.objects.create(name="added-by-an-admin")
    alice.groups.add(by_hand)
    bob.groups.add(by_hand)

    sync_groups(alice, ["eng", "staff"])

    assert sorted(alice.groups.values_list("name", flat=True)) == ["eng", "staff"]
    assert list(bob.groups.values_list("name", flat=True)) == ["added-by-an-admin"]

    sync_groups(alice, ["staff", "ops"])
    assert sorted(alice.groups.values_list("name", flat=True)) == ["ops", "staff"]
    assert Group.objects.filter(name="eng").exists()

    sync_groups(alice, [])
    assert not alice.groups.exists()


@pytest.mark.django_db
def test_password_sign_in_off_refuses_a_right_password_and_counts_no_failure(
    alice, settings
) -> None:
    settings.GLMWEB_PASSWORD_LOGIN = False
    client = Client()
    keys = throttle_keys("alice", "127.0.0.1")
    failures = [cache.get(key) for key in keys]

    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})

    assert response.status_code == 403
    assert PASSWORD_OFF_MESSAGE in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert [cache.get(key) for key in keys] == failures
    assert client.get(reverse("signup")).status_code == 404
    admin_login = client.get("/admin/login/?next=/admin/")
    assert admin_login.status_code == 302
    assert admin_login["Location"] == "/accounts/login/?next=%2Fadmin%2F"
