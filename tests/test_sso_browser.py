"""Single sign-on in a real browser, through a real OpenID Connect provider on
loopback: the button, the provider's pages, the chat, and the groups its claim
names, at this sign-in and the next. Accounts follow the provider's subject,
never an e-mail address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from bench.servers import free_port
from tests.browser import *  # noqa: F403
from tests.browser import (
    last_reply,
    needs_chromium,
    reply_lengths_while_streaming,
    wait_until_ready,
)
from tests.servers import App
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

pytestmark = [needs_chromium, needs_node, pytest.mark.browser]


@pytest.fixture(scope="module")
def glmweb_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(oidc_packages: Path, glmweb_port: int) -> Iterator[Provider]:  # noqa: F811
    with oidc_provider(oidc_packages, [glmweb_port]) as running:
        yield running


@pytest.fixture(scope="module")
def app(fake: FakeUpstream, provider: Provider, glmweb_port: int) -> Iterator[App]:
    with sso_site(fake.base_url, provider, glmweb_port) as running:
        yield running


def test_the_login_page_offers_the_provider_beside_the_password(page, app) -> None:
    page.goto(f"{site_url(app)}/accounts/login/")
    assert page.get_by_role("button", name=f"Sign in with {SSO_NAME}").is_visible()
    assert page.get_by_label("Username").is_visible()


def test_it_signs_in_chats_and_takes_the_claimed_groups(page, app, provider, fake) -> None:
    provider.set_account("alice", email="alice@example.com", groups=["staff", "eng"])

    fake.scenario = Scenario(tokens=60, reasoning_tokens=0, delay=0.03)
    expected = "".join(content_tokens(fake.scenario)).strip()

    sign_in_at_provider(page, site_url(app), "alice")
    wait_until_ready(page)
    # The provider's own pages ask for a web font from the internet: not ours.
    page.errors.clear()
    page.get_by_role("textbox", name="Message").fill("Hello from single sign-on")
    page.get_by_role("button", name="Send").click()
    lengths = reply_lengths_while_streaming(page)

    assert len({n for n in lengths if 0 < n < len(expected)}) >= 2, "arrived in several steps"
    assert last_reply(page).inner_text().strip() == expected
    assert page.locator(".account-name").inner_text() == "alice"
    assert page.errors == []
    alice = user_facts(app, "alice")
    assert alice["username"] == "alice" and alice["active"]
    assert alice["groups"] == ["eng", "staff"]


def test_a_changed_claim_moves_the_person_between_groups(browser, app, provider) -> None:
    provider.set_account("bob", email="bob@example.com", groups=["staff"])
    first = browser.new_context()
    sign_in_at_provider(first.new_page(), site_url(app), "bob")
    first.close()
    assert user_facts(app, "bob")["groups"] == ["staff"]

    provider.set_account("bob", email="bob@example.com", groups=["ops", "eng"])
    second = browser.new_context()
    page = second.new_page()
    sign_in_at_provider(page, site_url(app), "bob")
    wait_until_ready(page)
    second.close()

    assert user_facts(app, "bob")["groups"] == ["eng", "ops"]


def test_a_changed_email_is_still_the_same_account(browser, app, provider) -> None:
    provider.set_account("carol", email="carol@example.com", groups=[])
    context = browser.new_context()
    sign_in_at_provider(context.new_page(), site_url(app), "carol")
    context.close()
    before = user_facts(app, "carol")
    users = count_users(app)

    provider.set_account("carol", email="carol@elsewhere.example", groups=[])
    context = browser.new_context()
    page = context.new_page()
    sign_in_at_provider(page, site_url(app), "carol")
    wait_until_ready(page)
    name = page.locator(".account-name").inner_text()
    context.close()

    assert user_facts(app, "carol")["id"] == before["id"]
    assert count_users(app) == users
    assert name == before["username"]


def test_someone_with_another_persons_email_gets_an_account_of_their_own(
    browser, app, provider
) -> None:
    provider.set_account("dave", email="dave@example.com", groups=["finance"])
    context = browser.new_context()
    sign_in_at_provider(context.new_page(), site_url(app), "dave")
    context.close()

    # Mallory's provider account claims Dave's address.
    provider.set_account("mallory", email="dave@example.com", groups=[])
    context = browser.new_context()
    page = context.new_page()
    sign_in_at_provider(page, site_url(app), "mallory")
    wait_until_ready(page)
    shown = page.locator(".account-name").inner_text()
    context.close()

    dave, mallory = user_facts(app, "dave"), user_facts(app, "mallory")
    assert mallory["id"] != dave["id"]
    assert shown == mallory["username"] != dave["username"]
    assert mallory["groups"] == [] and dave["groups"] == ["finance"]
