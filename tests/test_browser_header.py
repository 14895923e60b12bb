"""The chat page's header in a real Chromium: the model picker (only the models a
person may use; the choice is saved and goes to the upstream), the marker of custom
instructions or settings, each reply's model, a new chat's example prompts (the
admin's), and a phone's header that leaves the title room."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.fake_upstream import FakeUpstream, Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import needs_chromium, send_and_wait_for_reply, sign_up, wait_until_ready
from tests.servers import App, glmweb_app
from tests.test_a11y import violations
from tests.test_browser_look import small_tap_targets

pytestmark = needs_chromium

MODELS = "glm-5:200000:thinking,glm-4.5-air:128000,glm-secret:64000"
LABELS = """
from chat.models import ChatModel
ChatModel.objects.filter(name="glm-5").update(label="GLM-5")
ChatModel.objects.filter(name="glm-4.5-air").update(label="GLM Air")
"""
# Interns may use two of the three models.
INTERNS = """
from django.contrib.auth.models import Group
from chat.models import ChatModel, GroupPolicy
group = Group.objects.create(name="Interns")
GroupPolicy.objects.create(group=group).allowed_models.set(
    ChatModel.objects.filter(name__in=["glm-5", "glm-4.5-air"])
)
"""


@pytest.fixture(scope="module")
def app(fake: FakeUpstream) -> Iterator[App]:
    with glmweb_app(fake.base_url, GLMWEB_MODELS=MODELS) as app:
        app.manage("shell", "-c", LABELS + INTERNS)
        yield app


@pytest.fixture(scope="module")
def site(app: App) -> str:
    return app.start_worker("header")


@pytest.fixture(autouse=True)
def short_replies(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=12, reasoning_tokens=0)


def join_interns(app: App, username: str) -> None:
    app.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import Group, User; "
        f"Group.objects.get(name='Interns').user_set.add(User.objects.get(username={username!r}))",
    )


def model_of(fake: FakeUpstream, text: str) -> str:
    return next(r for r in reversed(fake.requests) if r["messages"][-1]["content"] == text)["model"]


def reply_models(page: Any) -> list[str]:
    return page.locator("article[data-role=assistant] .reply-model").all_inner_texts()


def test_the_picker_offers_the_allowed_models_and_changes_the_conversations(
    page, app, site, fake
) -> None:
    sign_up(page, site, "ines")
    join_interns(app, "ines")
    page.reload()
    wait_until_ready(page)
    send_and_wait_for_reply(page, "Hello")
    assert model_of(fake, "Hello") == "glm-5"
    assert reply_models(page) == ["GLM-5"]

    picker = page.get_by_role("button", name="Model")
    assert page.locator("#model-badge").inner_text() == "GLM-5"
    assert picker.get_attribute("aria-expanded") == "false"
    picker.click()
    listbox = page.get_by_role("listbox", name="Model")
    listbox.wait_for()
    assert picker.get_attribute("aria-expanded") == "true"
    options = listbox.get_by_role("option")
    # Not glm-secret: the Interns' group doesn't allow it.
    assert [" ".join(text.split()) for text in options.all_inner_texts()] == [
        "GLM-5 200k context",
        "GLM Air 128k context",
    ]
    assert options.first.get_attribute("aria-selected") == "true"
    page.keyboard.press("Escape")
    listbox.wait_for(state="hidden")
    assert picker.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "model-picker"

    # By keyboard: open, down to GLM Air, Enter. It shows at once and is saved.
    with page.expect_response(lambda r: "/settings/" in r.url and r.request.method == "POST"):
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        assert page.locator("#model-badge").inner_text() == "GLM Air"
    page.reload()
    wait_until_ready(page)
    assert page.locator("#model-badge").inner_text() == "GLM Air"
    send_and_wait_for_reply(page, "Again")
    assert model_of(fake, "Again") == "glm-4.5-air"
    # Each reply names the model that wrote it, after a reload too.
    assert reply_models(page) == ["GLM-5", "GLM Air"]
    page.reload()
    wait_until_ready(page)
    assert reply_models(page) == ["GLM-5", "GLM Air"]
    assert page.errors == []


def test_a_new_chats_model_goes_with_its_first_message(page, site, fake) -> None:
    sign_up(page, site, "omar")
    page.get_by_role("button", name="Model").click()
    # Not in a restricting group: every enabled model is offered.
    assert page.get_by_role("option").count() == 3
    with page.expect_response(lambda r: "/settings/" in r.url and r.request.method == "POST"):
        page.get_by_role("option", name="GLM Air").click()
    assert page.get_by_role("listbox", name="Model").is_hidden()
    # The choice outlives a reload before the first message, as a draft does.
    page.reload()
    wait_until_ready(page)
    assert page.locator("#model-badge").inner_text() == "GLM Air"
    assert page.get_by_role("textbox", name="Message").get_attribute("placeholder") == (
        "Message GLM Air…"
    )
    send_and_wait_for_reply(page, "Which model?")
    assert model_of(fake, "Which model?") == "glm-4.5-air"
    page.wait_for_url("**/c/*/")
    page.reload()
    wait_until_ready(page)
    assert page.locator("#model-badge").inner_text() == "GLM Air"
    # Once sent, the choice belongs to that chat: the next new chat starts from the default.
    page.get_by_role("link", name="New chat").click()
    wait_until_ready(page)
    assert page.locator("#model-badge").inner_text() == "GLM-5"
    assert page.errors == []


def test_a_system_prompt_or_custom_settings_show_a_marker_that_opens_them(browser, site) -> None:
    context = browser.new_context(bypass_csp=True)  # to inject axe
    page = context.new_page()
    sign_up(page, site, "rosa")
    marker = page.locator("#custom-marker")
    assert marker.is_hidden()

    page.get_by_role("button", name="Chat settings").click()
    dialog = page.get_by_role("dialog", name="Chat settings")
    page.wait_for_function("() => document.getElementById('settings-model').options.length > 0")
    dialog.get_by_label("Temperature").fill("0.4")
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")
    page.get_by_role("button", name="Custom settings").wait_for()  # once the save answers

    send_and_wait_for_reply(page, "Hi")
    page.wait_for_url("**/c/*/")
    page.reload()
    wait_until_ready(page)
    custom = page.get_by_role("button", name="Custom settings")
    custom.wait_for()
    custom.click()
    dialog.wait_for()
    page.wait_for_function("() => document.getElementById('settings-model').options.length > 0")
    dialog.get_by_label("System prompt").fill("Answer in haiku.")
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")
    instructions = page.get_by_role("button", name="Custom instructions")
    instructions.wait_for()
    page.wait_for_function("document.activeElement?.id === 'custom-marker'")
    found = violations(page)

    # Back to the defaults: the marker goes.
    instructions.click()
    dialog.wait_for()
    page.wait_for_function("() => document.getElementById('settings-model').options.length > 0")
    dialog.get_by_label("System prompt").fill("")
    dialog.get_by_label("Temperature").fill("")
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")
    marker.wait_for(state="hidden")
    context.close()
    assert found == []


def test_example_prompts_fill_the_box_and_only_the_enabled_show(page, app, site, fake) -> None:
    app.manage(
        "shell",
        "-c",
        "from chat.models import ExamplePrompt; "
        "ExamplePrompt.objects.filter(title='Plan a trip').update(enabled=False)",
    )
    sign_up(page, site, "yuki")
    examples = page.get_by_role("list", name="Example prompts").get_by_role("button")
    assert examples.count() == 3
    assert page.get_by_role("button", name="Plan a trip").count() == 0
    sent_before = len(fake.requests)

    page.get_by_role("button", name="Write some code").click()
    box = page.get_by_role("textbox", name="Message")
    assert box.input_value().startswith("Write a Python function that removes duplicate lines")
    assert page.evaluate("document.activeElement.id") == "message"
    assert page.get_by_role("button", name="Send").is_enabled()
    # Nothing was sent: no message, no request.
    assert page.locator("article").count() == 0
    assert len(fake.requests) == sent_before

    box.press("Enter")
    page.locator("article[data-role=assistant]:not(.streaming)").wait_for()
    assert page.locator("#empty-state").is_hidden()
    assert page.errors == []


def test_a_phones_header_leaves_the_title_room(browser, site, fake) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    sign_up(page, site, "pia")
    page.get_by_role("textbox", name="Message").fill(
        "Help me write a long and careful letter to my landlord about the heating"
    )
    page.get_by_role("button", name="Send").click()
    page.locator("article[data-role=assistant]:not(.streaming)").last.wait_for()
    page.get_by_role("button", name="Send").wait_for()

    header = page.locator("header.topbar").bounding_box()
    title = page.locator("#conversation-title").bounding_box()
    assert header is not None and title is not None
    assert title["width"] >= 0.45 * header["width"], (title, header)
    assert page.get_by_role("button", name="Model").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert small_tap_targets(page) == []

    # The settings, shortcuts and delete buttons are under "More options".
    assert page.get_by_role("button", name="Chat settings").is_hidden()
    more = page.get_by_role("button", name="More options")
    more.click()
    assert more.get_attribute("aria-expanded") == "true"
    menu = page.get_by_role("menu", name="More options")
    assert menu.get_by_role("menuitem").all_inner_texts() == [
        "Chat settings",
        "Keyboard shortcuts",
        "Delete conversation",
    ]
    page.keyboard.press("Escape")
    menu.wait_for(state="hidden")
    more.click()
    menu.get_by_role("menuitem", name="Chat settings").click()
    dialog = page.get_by_role("dialog", name="Chat settings")
    dialog.wait_for()
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "more-open"
    context.close()
