"""Single sign-on and the sign-up policy: a new person from the provider is
created and signed in (open), waits for an admin (approval) or is refused
(closed, unless an account is already linked to their subject). With password
sign-in off, only the provider signs people in. With SSO unset, nothing of it
shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from bench.fake_upstream import FakeUpstream
from bench.servers import free_port
from tests.browser import *  # noqa: F403
from tests.browser import needs_chromium, wait_until_ready
from tests.servers import PASSWORD, App
from tests.sso import (
    SSO_NAME,
    Provider,
    count_users,
    needs_node,
    oidc_packages,  # noqa: F401  (a fixture)
    oidc_provider,
    sign_in_at_provider,
    site_url,
    sso_site,
    user_facts,
)


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """Each site's port, known before it starts: the provider registers its callback."""
    return {"approval": free_port(), "closed": free_port(), "sso_only": free_port()}


@pytest.fixture(scope="module")
def provider(oidc_packages: Path, ports: dict[str, int]) -> Iterator[Provider]:  # noqa: F811
    with oidc_provider(oidc_packages, list(ports.values())) as running:
        yield running


@pytest.fixture(scope="module")
def approval_site(fake: FakeUpstream, provider: Provider, ports: dict[str, int]) -> Iterator[App]:
    with sso_site(fake.base_url, provider, ports["approval"], GLMWEB_SIGNUP="approval") as app:
        yield app


@pytest.fixture(scope="module")
def closed_site(fake: FakeUpstream, provider: Provider, ports: dict[str, int]) -> Iterator[App]:
    with sso_site(fake.base_url, provider, ports["closed"], GLMWEB_SIGNUP="closed") as app:
        yield app


@pytest.fixture(scope="module")
def sso_only_site(fake: FakeUpstream, provider: Provider, ports: dict[str, int]) -> Iterator[App]:
    with sso_site(fake.base_url, provider, ports["sso_only"], GLMWEB_PASSWORD_LOGIN="false") as app:
        yield app


@needs_chromium
@needs_node
def test_with_approval_a_new_person_waits_for_an_admin(browser, approval_site, provider) -> None:
    provider.set_account("erin", email="erin@example.com", groups=["eng"])
    page = browser.new_context().new_page()

    sign_in_at_provider(page, site_url(approval_site), "erin")

    assert page.get_by_role("heading", name="Waiting for approval").is_visible()
    erin = user_facts(approval_site, "erin")
    assert not erin["active"] and erin["pending"] and erin["groups"] == ["eng"]
    page.goto(site_url(approval_site))
    assert "/accounts/login/" in page.url

    # A second try is still pending, and still the same one account.
    page = browser.new_context().new_page()
    sign_in_at_provider(page, site_url(approval_site), "erin")
    assert page.get_by_role("heading", name="Waiting for approval").is_visible()
    assert user_facts(approval_site, "erin")["id"] == erin["id"]

    approval_site.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; from django.utils import timezone; "
        f"u = get_user_model().objects.get(pk={erin['id']}); u.is_active = True; u.save(); "
        "u.signup_approval.approved_at = timezone.now(); u.signup_approval.save()",
    )
    page = browser.new_context().new_page()
    sign_in_at_provider(page, site_url(approval_site), "erin")
    wait_until_ready(page)


@needs_chromium
@needs_node
def test_closed_refuses_a_stranger_with_a_clear_page(page, closed_site, provider) -> None:
    provider.set_account("frank", email="frank@example.com", groups=[])
    users = count_users(closed_site)

    sign_in_at_provider(page, site_url(closed_site), "frank")

    assert page.get_by_role("heading", name="Sign-up is closed").is_visible()
    assert page.get_by_text(f"You signed in with {SSO_NAME}").is_visible()
    assert count_users(closed_site) == users
    page.goto(site_url(closed_site))
    assert "/accounts/login/" in page.url


@needs_chromium
@needs_node
def test_closed_lets_in_an_account_an_admin_linked(page, closed_site, provider) -> None:
    closed_site.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "from allauth.socialaccount.models import SocialAccount; "
        "u = get_user_model().objects.create_user('grace'); u.set_unusable_password(); u.save(); "
        "SocialAccount.objects.create(user=u, provider='sso', uid='grace-subject')",
    )
    provider.set_account("grace-subject", email="grace@example.com", groups=["ops"])

    sign_in_at_provider(page, site_url(closed_site), "grace-subject")

    wait_until_ready(page)
    assert page.locator(".account-name").inner_text() == "grace"
    assert user_facts(closed_site, "grace-subject")["groups"] == ["ops"]


@needs_chromium
@needs_node
def test_with_password_sign_in_off_only_the_provider_signs_in(page, sso_only_site) -> None:
    sso_only_site.create_user("henry", staff=True)
    base = site_url(sso_only_site)

    page.goto(f"{base}/accounts/login/")
    assert page.get_by_role("button", name=f"Sign in with {SSO_NAME}").is_visible()
    assert page.get_by_label("Username").count() == 0
    assert page.get_by_text("Create an account").count() == 0

    with httpx.Client(base_url=base) as client:
        client.get("/accounts/login/")
        token = client.cookies["csrftoken"]
        refused = client.post(
            "/accounts/login/",
            data={"username": "henry", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/accounts/login/"},
        )
        assert refused.status_code == 403
        assert "sessionid" not in client.cookies
        assert client.get("/accounts/signup/").status_code == 404
        admin_login = client.get("/admin/login/?next=/admin/")
        assert admin_login.status_code == 302
        assert admin_login.headers["location"] == "/accounts/login/?next=%2Fadmin%2F"
        refused = client.post(
            "/admin/login/",
            data={"username": "henry", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/admin/login/"},
        )
        assert "sessionid" not in client.cookies


@pytest.mark.django_db
def test_with_sso_unset_nothing_of_it_shows(client: Client) -> None:
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with" not in page
    assert 'name="username"' in page
    assert client.get("/accounts/oidc/sso/login/").status_code == 404
    assert client.get("/accounts/3rdparty/").status_code == 404
    with pytest.raises(NoReverseMatch):
        reverse("openid_connect_login", kwargs={"provider_id": "sso"})
