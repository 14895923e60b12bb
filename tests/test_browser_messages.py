"""Messages in a real Chromium: versions (edit, regenerate, switching, then reload),
copy, feedback, how a reply ended (Continue, Retry, the content filter), thinking."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from bench.fake_upstream import Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import last_reply, needs_chromium, sign_up, wait_until_ready

pytestmark = needs_chromium


def send(page, text: str) -> None:
    questions = page.locator("article[data-role=user]").count()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    page.wait_for_function(
        f"() => document.querySelectorAll('article[data-role=user]').length > {questions}"
    )
    wait_for_idle(page)


def wait_for_idle(page) -> None:
    """Until the reply shown last has ended and nothing is pending."""
    page.wait_for_function(
        "() => { const last = document.querySelector('#messages > article:last-child');"
        " return last && last.dataset.role === 'assistant'"
        " && !last.classList.contains('streaming')"
        " && !document.getElementById('composer').classList.contains('sending')"
        " && !document.getElementById('send').hidden; }"
    )


def user_texts(page) -> list[str]:
    return [t.strip() for t in page.locator("article[data-role=user] .bubble").all_inner_texts()]


def sent_contents(fake) -> list[str]:
    return [m["content"] for m in fake.requests[-1]["messages"]]


def test_edit_and_resend_then_switch_versions_and_reload(page, site, fake) -> None:
    fake.scenario = Scenario(text="First answer.", reasoning_tokens=0)
    sign_up(page, site, "bea")
    send(page, "First question")
    fake.scenario = Scenario(text="Second answer.", reasoning_tokens=0)
    send(page, "Second question")

    second = page.locator("article[data-role=user]").last
    second.get_by_role("button", name="Edit message").click()
    editor = second.get_by_role("textbox", name="Edit message")
    assert editor.input_value() == "Second question"
    editor.press("Escape")
    assert user_texts(page) == ["First question", "Second question"]

    second.get_by_role("button", name="Edit message").click()
    fake.scenario = Scenario(text="Edited answer.", reasoning_tokens=0)
    second.get_by_role("textbox", name="Edit message").fill("Second question, edited")
    second.get_by_role("button", name="Save & send").click()
    page.get_by_text("Edited answer.").wait_for()
    wait_for_idle(page)

    assert user_texts(page) == ["First question", "Second question, edited"]
    assert sent_contents(fake) == ["First question", "First answer.", "Second question, edited"]
    edited = page.locator("article[data-role=user]").last
    assert edited.get_by_text("2/2").is_visible()

    edited.get_by_role("button", name="Previous version").click()
    assert user_texts(page) == ["First question", "Second question"]
    expect(last_reply(page)).to_have_text("Second answer.", use_inner_text=True)
    page.locator("article[data-role=user]").last.get_by_text("1/2").wait_for()

    page.reload()
    wait_until_ready(page)
    assert user_texts(page) == ["First question", "Second question"]
    expect(last_reply(page)).to_have_text("Second answer.", use_inner_text=True)

    fake.scenario = Scenario(text="Third answer.", reasoning_tokens=0)
    send(page, "Third question")
    assert sent_contents(fake) == [
        "First question",
        "First answer.",
        "Second question",
        "Second answer.",
        "Third question",
    ]
    assert page.errors == []


def test_regenerate_keeps_the_earlier_reply_as_a_version(page, site, fake) -> None:
    fake.scenario = Scenario(text="Answer one.", reasoning_tokens=0)
    sign_up(page, site, "cai")
    send(page, "Question")

    fake.scenario = Scenario(text="Answer two.", reasoning_tokens=0)
    page.get_by_role("button", name="Regenerate reply").click()
    page.get_by_text("Answer two.").wait_for()
    wait_for_idle(page)

    reply = page.locator("article[data-role=assistant]").last
    assert reply.get_by_text("2/2").is_visible()
    reply.get_by_role("button", name="Previous version").click()
    # A reply shown again is laid out in the next frame (`content-visibility`):
    # until then its innerText is empty, though its text is there. Hence expect, which waits.
    expect(last_reply(page)).to_have_text("Answer one.", use_inner_text=True)
    assert page.locator("article[data-role=assistant]").count() == 1
    page.locator("article[data-role=assistant]").get_by_role("button", name="Next version").click()
    expect(last_reply(page)).to_have_text("Answer two.", use_inner_text=True)
    assert page.errors == []


def test_copy_a_message_and_a_reply(page, site, fake) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    fake.scenario = Scenario(text="Copy **me**.", reasoning_tokens=0)
    sign_up(page, site, "dov")
    send(page, "Copy this question")

    page.get_by_role("button", name="Copy message").click()
    assert page.evaluate("navigator.clipboard.readText()") == "Copy this question"
    page.get_by_role("button", name="Copy reply").click()
    assert page.evaluate("navigator.clipboard.readText()") == "Copy **me**."
    assert page.errors == []


def test_thumbs_and_a_comment_are_saved(page, site, fake) -> None:
    fake.scenario = Scenario(text="A so-so answer.", reasoning_tokens=0)
    sign_up(page, site, "eli")
    send(page, "Rate me")

    good = page.get_by_role("button", name="Good reply")
    bad = page.get_by_role("button", name="Bad reply")
    good.click()
    page.locator("button[aria-label='Good reply'][aria-pressed=true]").wait_for()
    good = page.get_by_role("button", name="Good reply")
    good.click()  # pressing it again takes it back
    page.locator("button[aria-label='Good reply'][aria-pressed=false]").wait_for()

    page.get_by_role("button", name="Bad reply").click()
    comment = page.get_by_role("textbox", name=re.compile("What was wrong"))
    comment.fill("Too vague.")
    page.get_by_role("button", name="Send feedback").click()
    page.get_by_text("Your feedback: Too vague.").wait_for()

    page.reload()
    wait_until_ready(page)
    bad = page.get_by_role("button", name="Bad reply")
    assert bad.get_attribute("aria-pressed") == "true"
    assert page.get_by_role("button", name="Good reply").get_attribute("aria-pressed") == "false"
    assert page.get_by_text("Your feedback: Too vague.").is_visible()
    assert page.errors == []


MENDED = "The first half and the second half."


def test_a_reply_cut_at_the_length_limit_continues_in_place(page, site, fake) -> None:
    fake.scenario = Scenario(text="The first half", reasoning_tokens=0, finish_reason="length")
    sign_up(page, site, "fay")
    send(page, "Write a long text")
    page.get_by_text("cut off").wait_for()

    fake.scenario = Scenario(text=" and the second half.", reasoning_tokens=0)
    page.get_by_role("button", name="Continue this reply").click()
    page.get_by_text("and the second half.").wait_for()
    wait_for_idle(page)

    expect(last_reply(page)).to_have_text(MENDED, use_inner_text=True)
    assert page.locator("article[data-role=assistant]").count() == 1
    assert page.get_by_text("cut off").count() == 0
    assert sent_contents(fake)[-1] == "The first half"
    page.reload()
    wait_until_ready(page)
    expect(last_reply(page)).to_have_text(MENDED, use_inner_text=True)
    assert page.errors == []


def test_a_network_error_offers_retry_and_a_filtered_reply_says_so(page, site, fake) -> None:
    fake.scenario = Scenario(text="Half an", reasoning_tokens=0, finish_reason="network_error")
    sign_up(page, site, "gus")
    send(page, "Try me")
    notice = page.get_by_role("alert").filter(has_text="network error")
    notice.wait_for()

    fake.scenario = Scenario(text="A whole answer.", reasoning_tokens=0)
    notice.get_by_role("button", name="Retry this reply").click()
    page.get_by_text("A whole answer.").wait_for()
    wait_for_idle(page)
    assert page.locator("article[data-role=assistant]").last.get_by_text("2/2").is_visible()

    fake.scenario = Scenario(text="Some of", reasoning_tokens=0, finish_reason="sensitive")
    send(page, "Something touchy")
    blocked = page.get_by_text("content filter blocked the rest of this reply")
    blocked.wait_for()
    notice = page.locator(".reply-notice").last
    assert notice.get_by_role("button").count() == 0, "no Continue or Retry for a block"
    assert page.errors == []


def test_thinking_opens_while_thinking_and_folds_when_the_answer_starts(page, site, fake) -> None:
    fake.scenario = Scenario(tokens=15, reasoning_tokens=40, delay=0.05)
    sign_up(page, site, "hal")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Think first")
    box.press("Enter")

    page.locator("details.thinking[open]").wait_for()
    page.wait_for_function(
        "() => (document.querySelector('article[data-role=assistant] .reply-body')"
        "?.innerText || '').length > 0"
    )
    page.wait_for_function("() => !document.querySelector('details.thinking').open")
    wait_for_idle(page)

    summary = page.locator("details.thinking summary").inner_text()
    assert re.search(r"thought for \d+(\.\d)? s · [\d,]+ chars", summary), summary
    page.locator("details.thinking summary").click()
    assert "carefully" in page.locator(".thinking-body").inner_text()
    assert page.errors == []


def test_messages_show_when_they_were_written(page, site, fake) -> None:
    fake.scenario = Scenario(text="Now.", reasoning_tokens=0)
    sign_up(page, site, "ivy")
    send(page, "When?")
    times = page.locator("article time.msg-time")
    assert times.count() == 2
    assert times.first.inner_text() == "just now"
    assert times.first.get_attribute("datetime")
    assert times.first.get_attribute("title")
    assert re.search(r"\b1 token\b", page.locator(".reply-meta").inner_text())
