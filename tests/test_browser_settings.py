"""The settings panel in a real Chromium: what a person sets reaches the upstream
request; bad values are explained next to their field; presets; the note on a
reply whose request left earlier messages out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.fake_upstream import FakeUpstream, Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import needs_chromium, send_and_wait_for_reply, sign_up, wait_until_ready
from tests.servers import glmweb_app
from tests.test_a11y import violations

pytestmark = needs_chromium

MODELS = "glm-5:200000:thinking,tiny:700"


@pytest.fixture(scope="module")
def site(fake: FakeUpstream) -> Iterator[str]:
    with glmweb_app(fake.base_url, GLMWEB_MODELS=MODELS, GLMWEB_GENERATED_TITLES="false") as app:
        yield app.start_worker("settings")


@pytest.fixture(autouse=True)
def short_replies(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=12, reasoning_tokens=0)


def request_with(fake: FakeUpstream, text: str) -> dict[str, Any]:
    """The last request the fake received whose newest message is ``text``."""
    return next(r for r in reversed(fake.requests) if r["messages"][-1]["content"] == text)


def open_settings(page: Any) -> Any:
    page.get_by_role("button", name="Chat settings").click()
    dialog = page.get_by_role("dialog", name="Chat settings")
    dialog.wait_for()
    # The panel is filled once the server answered.
    page.wait_for_function("() => document.getElementById('settings-model').options.length > 0")
    return dialog


def script_errors(page: Any) -> list[str]:
    # A refused save is a 400 answer, which Chromium reports on the console.
    return [e for e in page.errors if "status of 400" not in e]


def test_new_chat_settings_reach_the_upstream_and_stay_with_the_conversation(
    page, site, fake
) -> None:
    sign_up(page, site, "sofia")
    dialog = open_settings(page)
    assert dialog.get_by_text("For the new chat").is_visible()
    dialog.get_by_label("System prompt").fill("Answer in French.")
    dialog.get_by_label("Temperature").fill("0.3")
    dialog.get_by_label("Stop sequence 1").fill("FIN")
    dialog.get_by_label("Thinking").select_option(label="Off")
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")

    send_and_wait_for_reply(page, "Bonjour")
    sent = request_with(fake, "Bonjour")
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert (sent["temperature"], sent["stop"]) == (0.3, ["FIN"])
    assert sent["thinking"] == {"type": "disabled"}
    page.wait_for_url("**/c/*/")

    # The conversation kept them: after a reload the panel shows them.
    page.reload()
    wait_until_ready(page)
    dialog = open_settings(page)
    assert dialog.get_by_text("For this conversation").is_visible()
    assert dialog.get_by_label("System prompt").input_value() == "Answer in French."
    assert dialog.get_by_label("Temperature").input_value() == "0.3"
    assert dialog.get_by_label("Thinking").input_value() == "off"
    assert script_errors(page) == []


def test_a_bad_value_is_explained_next_to_its_field(page, site, fake) -> None:
    sign_up(page, site, "tomas")
    send_and_wait_for_reply(page, "Hi")
    dialog = open_settings(page)
    temperature = dialog.get_by_label("Temperature")
    temperature.fill("3")
    dialog.get_by_role("button", name="Save", exact=True).click()

    error = page.locator("#settings-temperature-error")
    error.wait_for()
    assert error.inner_text() == "Temperature must be a number from 0 to 2."
    assert temperature.get_attribute("aria-invalid") == "true"
    assert dialog.is_visible()

    temperature.fill("1.2")
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")
    send_and_wait_for_reply(page, "Again")
    assert request_with(fake, "Again")["temperature"] == 1.2
    assert script_errors(page) == []


def test_save_apply_and_delete_a_preset(page, site, fake) -> None:
    sign_up(page, site, "petra")
    dialog = open_settings(page)
    dialog.get_by_label("System prompt").fill("Talk like a pirate.")
    dialog.get_by_label("Max tokens").fill("300")
    dialog.get_by_label("Preset name").fill("Pirate")
    dialog.get_by_role("button", name="Save as preset").click()
    page.get_by_text("Saved preset “Pirate”.").wait_for()

    # The same name again is refused, next to the name.
    dialog.get_by_label("Preset name").fill("Pirate")
    dialog.get_by_role("button", name="Save as preset").click()
    page.get_by_text("You already have a preset named “Pirate”").wait_for()
    dialog.get_by_role("button", name="Cancel").click()

    # A fresh page: the preset is there, and applying it sets the new chat.
    page.reload()
    wait_until_ready(page)
    dialog = open_settings(page)
    assert dialog.get_by_label("System prompt").input_value() == ""
    dialog.get_by_label("Preset", exact=True).select_option(label="Pirate")
    dialog.get_by_role("button", name="Apply").click()
    dialog.wait_for(state="hidden")
    send_and_wait_for_reply(page, "Ahoy?")
    sent = request_with(fake, "Ahoy?")
    assert sent["messages"][0]["content"] == "Talk like a pirate."
    assert sent["max_tokens"] == 300

    dialog = open_settings(page)
    dialog.get_by_role("button", name="Delete").click()
    page.get_by_text("Deleted preset “Pirate”.").wait_for()
    assert dialog.get_by_label("Preset", exact=True).input_value() == ""
    assert script_errors(page) == []


def test_the_model_badge_and_the_left_out_note(page, site, fake) -> None:
    sign_up(page, site, "lena")
    dialog = open_settings(page)
    dialog.get_by_label("Model").select_option("tiny")
    # tiny takes no thinking switch: the field goes away.
    assert not dialog.get_by_label("Thinking").is_visible()
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")
    assert page.locator("#model-badge").inner_text() == "tiny"

    # tiny's 700 tokens keep 175 for the reply: three 800-character questions
    # (204 tokens each) don't fit with their answers.
    for n in range(1, 4):
        send_and_wait_for_reply(page, f"Question {n} ".ljust(800, "."))
    assert request_with(fake, "Question 3 ".ljust(800, "."))["model"] == "tiny"

    note = page.locator("article[data-role=assistant] .context-note").last
    expected = "2 earlier messages were left out to fit tiny's context."
    assert note.inner_text() == expected
    assert page.locator(".context-note:visible").count() == 1
    page.reload()
    wait_until_ready(page)
    assert page.locator("article[data-role=assistant] .context-note").last.inner_text() == expected
    assert page.locator("#model-badge").inner_text() == "tiny"
    assert script_errors(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_panel_has_no_serious_accessibility_problem(browser, site, scheme) -> None:
    context = browser.new_context(color_scheme=scheme, bypass_csp=True)  # to inject axe
    page = context.new_page()
    sign_up(page, site, f"ali-{scheme}")
    dialog = open_settings(page)
    dialog.get_by_label("Temperature").fill("3")
    dialog.get_by_role("button", name="Save", exact=True).click()
    page.locator("#settings-temperature-error").wait_for()
    found = violations(page)
    context.close()
    assert found == []


def test_the_panel_takes_no_typing_until_the_saved_settings_arrive(page, site) -> None:
    """Typing into the panel before its settings arrive would be overwritten by them:
    the fields wait, disabled, for the server's answer."""
    sign_up(page, site, "quentin")
    held: list[Any] = []
    page.route("**/settings/", lambda route: held.append(route))
    page.get_by_role("button", name="Chat settings").click()
    dialog = page.get_by_role("dialog", name="Chat settings")
    dialog.wait_for()
    for _ in range(200):  # up to 10 s for the request to reach the route
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the panel asked for its settings"
    prompt = dialog.get_by_label("System prompt")
    assert prompt.is_disabled()

    held[0].continue_()
    page.unroute("**/settings/")
    prompt.fill("Be brief.")  # waits for the field to be enabled
    dialog.get_by_role("button", name="Save", exact=True).click()
    dialog.wait_for(state="hidden")
    assert open_settings(page).get_by_label("System prompt").input_value() == "Be brief."
