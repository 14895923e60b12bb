"""Small things a person sees, in a real Chromium at a laptop's and a phone's width:
the usage page (fits a phone, no rows of zero days, chart labels apart), the
account menu's theme switch on one line, the archived view's headings, and the
"Load image" placeholder's icon."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bench.fake_upstream import FakeUpstream, Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import last_reply, needs_chromium, sign_up, wait_until_ready
from tests.servers import App, glmweb_app

pytestmark = needs_chromium

DESKTOP = {"viewport": {"width": 1366, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
SIZES = {"desktop": DESKTOP, "phone": PHONE}

USAGE = """
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth.models import Group, User
from chat.models import DailyUsage, GroupPolicy
from chat.usage import limits
person = User.objects.get(username={username!r})
group = Group.objects.create(name="budgeted")
group.user_set.add(person)
GroupPolicy.objects.create(group=group, monthly_budget=Decimal("10.00"), tokens_per_day=100000)
for days_ago, prompt, completion in [(0, 1200, 3400), (3, 15000, 22000), (12, 300, 900)]:
    DailyUsage.objects.create(user=person, day=limits.today() - timedelta(days=days_ago),
        model="glm-5-with-a-long-model-name", prompt_tokens=prompt, completion_tokens=completion,
        total_tokens=prompt + completion, replies=2, cost=Decimal("0.25"))
"""

ARCHIVED = """
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from chat.models import Conversation
person = User.objects.get(username={username!r})
Conversation.objects.create(owner=person, title="Still here")
Conversation.objects.create(owner=person, title="Put away today", archived=True)
Conversation.objects.create(owner=person, title="Pinned, then put away", archived=True, pinned=True)
old = Conversation.objects.create(owner=person, title="Put away long ago", archived=True)
Conversation.objects.filter(id=old.id).update(updated_at=timezone.now() - timedelta(days=70))
"""


@pytest.fixture(scope="module")
def app(fake: FakeUpstream) -> Iterator[App]:
    with glmweb_app(fake.base_url) as running:
        running.start_worker("tidy")
        yield running


@pytest.fixture(scope="module")
def site(app: App) -> str:
    return f"http://127.0.0.1:{app.ports['tidy']}"


def new_context(browser: Any, size: str, theme: str = "light") -> Any:
    return browser.new_context(color_scheme=theme, **SIZES[size])


def signed_up(browser: Any, site: str, username: str) -> dict:
    """A logged-in browser state for a new person."""
    context = browser.new_context()
    page = context.new_page()
    sign_up(page, site, username)
    state = context.storage_state()
    context.close()
    return state


def overlapping(boxes: list[dict]) -> list[tuple[dict, dict]]:
    return [
        (a, b)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    ]


# --- The usage page ------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_with_usage(browser: Any, app: App, site: str) -> dict:
    state = signed_up(browser, site, "uma")
    app.manage("shell", "-c", USAGE.format(username="uma"))
    return state


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_usage_page_fits_lists_days_with_use_and_keeps_chart_labels_apart(
    browser, site, user_with_usage, size, theme
) -> None:
    context = browser.new_context(color_scheme=theme, storage_state=user_with_usage, **SIZES[size])
    page = context.new_page()
    page.goto(f"{site}/usage/")

    width = SIZES[size]["viewport"]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for table in page.locator(".usage-table").all():  # each inside the page's width
        box = table.locator("xpath=..").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width

    days = page.locator("table.usage-days tbody tr[data-day]")
    assert days.count() == 3
    totals = page.locator("table.usage-days td.total").all_inner_texts()
    assert totals and "0" not in totals
    quiet = page.locator("table.usage-days tr.usage-quiet-days").all_inner_texts()
    assert quiet and all("no use" in row for row in quiet)
    assert any(re.search(r"\(\d+ days\)", row) for row in quiet)  # a run on one line

    labels = page.locator(".usage-chart .chart-label")
    boxes = labels.evaluate_all(
        "ts => ts.map(t => { const r = t.getBoundingClientRect(); return {text: t.textContent,"
        " left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })"
    )
    assert len([b for b in boxes if re.match(r"[A-Z][a-z]{2} \d+$", b["text"])]) >= 4
    assert overlapping(boxes) == []
    # Readable on a phone too: the day labels at least 8 CSS pixels tall.
    assert min(b["bottom"] - b["top"] for b in boxes) >= 8

    budget = page.locator("tr[data-limit='Budget this month']")
    assert "10.00 USD" in budget.inner_text() and budget.is_visible()
    context.close()


def test_the_usage_page_says_so_when_there_is_no_use(browser, site) -> None:
    state = signed_up(browser, site, "nadia")
    context = browser.new_context(storage_state=state, **PHONE)
    page = context.new_page()
    page.goto(f"{site}/usage/")

    assert page.locator("#usage-empty").inner_text().startswith("No use in the last 30 days")
    assert page.locator("table.usage-days").count() == 0
    assert page.locator("figure.usage-chart").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


# --- The account menu's theme switch -------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_theme_switch_is_one_line(browser, site, user_with_usage, size) -> None:
    context = browser.new_context(storage_state=user_with_usage, **SIZES[size])
    page = context.new_page()
    page.goto(f"{site}/")
    wait_until_ready(page)
    if size == "phone":
        page.get_by_role("button", name="Open sidebar").click()
    page.locator("details.account summary").click()
    switch = page.locator(".theme-choice")
    switch.wait_for()

    labels = switch.locator("label")
    assert labels.all_inner_texts() == ["System", "Light", "Dark"]
    boxes = [label.bounding_box() for label in labels.all()]
    assert len({round(box["y"]) for box in boxes}) == 1  # one top for all three
    menu = page.locator(".account-menu").bounding_box()
    assert all(
        menu["x"] <= box["x"] and box["x"] + box["width"] <= menu["x"] + menu["width"]
        for box in boxes
    )

    page.get_by_text("Dark", exact=True).click()
    page.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    context.close()


# --- The archived view ------------------------------------------------------------------------


def test_the_archived_view_has_no_empty_heading(browser, app, site) -> None:
    state = signed_up(browser, site, "archie")
    app.manage("shell", "-c", ARCHIVED.format(username="archie"))
    context = browser.new_context(storage_state=state, **DESKTOP)
    page = context.new_page()
    page.goto(f"{site}/")
    wait_until_ready(page)

    def group_headings() -> list[dict]:
        """Each visible group heading with the chats listed right under it."""
        return page.evaluate(
            """() => [...document.querySelectorAll('#sidebar nav h2, #sidebar nav h3')]
                .filter(h => h.getClientRects().length && !h.classList.contains('visually-hidden'))
                .map(h => ({text: h.textContent, group: h.classList.contains('sidebar-heading'),
                            chats: h.nextElementSibling?.querySelectorAll('li').length ?? 0}))"""
        )

    page.get_by_role("button", name="Archived chats").click()
    page.locator(".conv-link", has_text="Put away long ago").wait_for()
    headings = group_headings()
    assert [h["text"] for h in headings if h["group"]] == ["Today", headings[-1]["text"]]
    assert all(h["chats"] for h in headings if h["group"])
    assert [h["text"] for h in headings if not h["group"]] == ["Archived chats"]
    title = page.get_by_role("heading", name="Archived chats")
    group = page.locator(".conv-group .sidebar-heading").first
    assert title.evaluate("h => getComputedStyle(h).textTransform") == "none"
    assert group.evaluate("h => getComputedStyle(h).textTransform") == "uppercase"
    assert page.locator(".conv-link", has_text="Still here").count() == 0

    # Taking the only chat out of its group takes its heading with it.
    page.locator(".conv-item", has_text="Put away long ago").locator(".conv-menu-button").click()
    page.get_by_role("menuitem", name="Unarchive").click()
    page.locator(".conv-link", has_text="Put away long ago").wait_for(state="detached")
    headings = group_headings()
    assert [h["text"] for h in headings if h["group"]] == ["Today"]
    assert all(h["chats"] for h in headings if h["group"])
    context.close()


# --- The image placeholder ------------------------------------------------------------------


def test_the_load_image_control_draws_an_svg_icon_not_an_emoji(page, site, fake) -> None:
    fake.scenario = Scenario(
        reasoning_tokens=0, text="A cat: ![a cat](https://example.org/cat.png)"
    )
    sign_up(page, site, "iris")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Show me a cat")
    box.press("Enter")
    page.locator("article[data-role=assistant]:not(.streaming)").last.wait_for()

    load = last_reply(page).get_by_role("button", name="Load image from example.org")
    icon = load.locator("svg")
    assert icon.count() == 1 and icon.is_visible()
    assert icon.get_attribute("aria-hidden") == "true"
    text = load.inner_text()
    assert not re.search("[\U0001f000-\U0001faff\u2600-\u27bf]", text)
    before = load.locator(".image-load-label").evaluate(
        "l => getComputedStyle(l, '::before').content"
    )
    assert before in ("none", "normal")
    # The icon follows the text's colour.
    colours = load.evaluate(
        "b => [getComputedStyle(b.querySelector('svg')).stroke, getComputedStyle(b).color]"
    )
    assert colours[0] == colours[1]
    assert page.errors == []
