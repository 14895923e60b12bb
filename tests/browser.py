"""Browser-test building blocks: Debian's Chromium under Playwright, a module's
fake upstream and glmweb worker, a page that records script errors, sign-up.

A test module uses them with ``from tests.browser import *`` (fixtures and
helpers) and sets ``pytestmark = needs_chromium``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from bench.fake_upstream import FakeUpstream
from tests.servers import glmweb_app

CHROMIUM = "/usr/bin/chromium"
NGINX = "/usr/sbin/nginx"
PASSWORD = "a long enough test password 1"

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium (make test installs it as root)"
)

try:
    from playwright import sync_api as playwright_api
except ImportError:  # the suite installs it; without it the browser tests skip
    playwright_api = None
    needs_chromium = pytest.mark.skip(reason="needs playwright")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().run_in_thread() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def site(fake: FakeUpstream) -> Iterator[str]:
    with glmweb_app(fake.base_url) as app:
        yield app.start_worker("browser")


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    yield page
    # Shown by pytest only when the test failed: what the person saw.
    print("url:", page.url, "errors:", errors)
    print("alert:", page.locator("[role=alert]").all_inner_texts())
    print("messages:", [t[:200] for t in page.locator("article").all_inner_texts()])
    context.close()


def admin_page(browser: object, base_url: str, username: str, **options: object) -> object:
    """A new page in a new context of ``options``, logged in to the admin."""
    page = browser.new_context(**options).new_page()
    page.goto(f"{base_url}/admin/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#site-name").wait_for()
    return page


def sign_up(page: object, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/signup/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    wait_until_ready(page)


def wait_until_ready(page: object) -> None:
    try:
        page.locator("main#chat[data-ready=true]").wait_for()
    except playwright_api.TimeoutError:
        print("not ready:", page.url, page.content()[:3000])
        raise


def send_and_wait_for_reply(page: object, text: str) -> None:
    """Send a message and wait until its reply has ended."""
    replies = page.locator("article[data-role=assistant]")
    before = replies.count()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    page.wait_for_function(
        "n => { const r = document.querySelectorAll('article[data-role=assistant]');"
        " return r.length > n && !r[r.length - 1].classList.contains('streaming'); }",
        arg=before,
    )


def last_reply(page: object) -> object:
    return page.locator("article[data-role=assistant] .reply-body").last


def reply_lengths_while_streaming(page: object, timeout: float = 20) -> list[int]:
    """Sample the reply's visible length until Send comes back."""
    lengths = []
    deadline = time.monotonic() + timeout
    send = page.get_by_role("button", name="Send")
    while time.monotonic() < deadline:
        if last_reply(page).count():
            lengths.append(len(last_reply(page).inner_text()))
        if lengths and send.is_visible() and send.is_enabled():
            break
        page.wait_for_timeout(50)
    return lengths


__all__ = [
    "CHROMIUM",
    "PASSWORD",
    "browser",
    "fake",
    "last_reply",
    "needs_chromium",
    "page",
    "playwright_api",
    "reply_lengths_while_streaming",
    "sign_up",
    "site",
    "wait_until_ready",
]
