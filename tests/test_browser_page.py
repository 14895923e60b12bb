"""The message area in a real Chromium: markdown while it streams (no half-open
syntax), "Jump to latest", a failed reply's actions, icon buttons with names,
and a 1,000-message conversation with every message's text in the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.fake_upstream import FakeUpstream, Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import needs_chromium, sign_up, wait_until_ready
from tests.servers import App, glmweb_app

pytestmark = needs_chromium

HALF_OPEN = (
    "Here is the **offline demo** with `inline code` and [a link](https://example.org/) too.\n\n"
    "```python\nprint(1)\nprint(2)\nprint(3)\nprint(4)\n```\n\nAll done."
)

# Every state the streaming reply's body shows, as the page shows it.
RECORD_STREAM = """() => {
  window.__states = [];
  new MutationObserver(() => {
    const body = document.querySelector('article.streaming .reply-body');
    if (!body) return;
    window.__states.push({
      text: body.textContent,
      bold: body.querySelector('strong')?.textContent ?? null,
      codeBlock: Boolean(body.querySelector('.code-block pre code')),
    });
  }).observe(document.getElementById('messages'),
             { subtree: true, childList: true, characterData: true });
}"""

# While a reply streams: how many blocks carry the cursor, and whether it is the last one.
RECORD_CURSOR = """() => {
  window.__states = [];
  new MutationObserver(() => {
    const body = document.querySelector('article.streaming .reply-body');
    if (!body || !body.firstElementChild) return;
    let last = body.lastElementChild;
    while (last.classList.contains('md-chunk')) last = last.lastElementChild;
    const cursors = body.querySelectorAll('.stream-cursor');
    window.__states.push({
      count: cursors.length,
      onLast: cursors[0] === last,
      drawn: cursors.length > 0 && getComputedStyle(cursors[0], '::after').content !== 'none',
    });
  }).observe(document.getElementById('messages'), { subtree: true, childList: true });
}"""

REPLY_LENGTH = "document.querySelector('article[data-role=assistant]').innerText.length"
NEAR_BOTTOM = (
    "() => { const s = document.getElementById('scroller');"
    " return s.scrollHeight - s.scrollTop - s.clientHeight < 80; }"
)


@pytest.fixture(scope="module")
def app(fake: FakeUpstream) -> Iterator[App]:
    with glmweb_app(fake.base_url) as started:
        yield started


@pytest.fixture(scope="module")
def base(app: App) -> str:
    return app.start_worker("page")


def send(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def wait_for_idle(page) -> None:
    page.wait_for_function(
        "() => { const last = document.querySelector('#messages > article:last-child');"
        " return last && last.dataset.role === 'assistant'"
        " && !last.classList.contains('streaming')"
        " && !document.getElementById('send').hidden; }"
    )


def last_assistant(page):
    return page.locator("article[data-role=assistant]").last


def recorded_stream(page, base, fake, username: str, recorder: str) -> list[dict]:
    """HALF_OPEN streamed to a new person, with `recorder` noting each state shown."""
    fake.scenario = Scenario(text=HALF_OPEN, reasoning_tokens=0, delay=0.04)
    sign_up(page, base, username)
    page.evaluate(recorder)
    send(page, "Show me markdown")
    wait_for_idle(page)
    states = page.evaluate("window.__states")
    assert len(states) > 5, states
    return states


def test_streaming_markdown_never_shows_half_open_syntax(page, base, fake) -> None:
    states = recorded_stream(page, base, fake, "hana", RECORD_STREAM)
    for state in states:
        assert "**" not in state["text"], state
        assert "`" not in state["text"], state
        assert "[a link" not in state["text"] and "](" not in state["text"], state
    assert any(state["bold"] == "offline demo" for state in states)
    # The fence renders as a code block in progress, before the reply goes on.
    assert any(s["codeBlock"] and "All done" not in s["text"] for s in states), states
    body = last_assistant(page).locator(".reply-body")
    assert body.locator("strong").inner_text() == "offline demo"
    assert body.get_by_role("link", name="a link").count() == 1
    assert "print(4)" in body.locator(".code-block code").inner_text()
    assert page.errors == []


def test_the_cursor_marks_the_last_block_while_streaming_and_goes_at_the_end(
    page, base, fake
) -> None:
    states = recorded_stream(page, base, fake, "cora", RECORD_CURSOR)
    assert all(state["count"] <= 1 for state in states), states
    assert any(state["count"] == 1 and state["onLast"] and state["drawn"] for state in states)
    body = last_assistant(page).locator(".reply-body")
    assert body.locator(".stream-cursor").count() == 0
    assert 'class=""' not in body.inner_html()  # the block it left is as a reload renders it
    assert page.errors == []


def test_jump_to_latest_appears_when_scrolled_up_and_resumes_following(page, base, fake) -> None:
    fake.scenario = Scenario(tokens=1500, reasoning_tokens=0, delay=0.008)
    sign_up(page, base, "ines")
    jump = page.get_by_role("button", name="Jump to latest")
    send(page, "A long one, please")
    page.wait_for_function(
        "() => { const s = document.getElementById('scroller');"
        " return s.scrollHeight - s.clientHeight > 600; }"
    )
    assert not jump.is_visible()

    page.mouse.move(640, 300)
    page.mouse.wheel(0, -500)
    jump.wait_for()
    # Scrolled up: the text grows below without pulling the reader down.
    scroll_top = "document.getElementById('scroller').scrollTop"
    top = page.evaluate(scroll_top)
    length = len(last_assistant(page).inner_text())
    page.wait_for_function(f"() => {REPLY_LENGTH} > {length + 400}")
    assert page.evaluate(scroll_top) == pytest.approx(top, abs=4)
    assert not page.evaluate(NEAR_BOTTOM)

    # Reachable by keyboard: one Shift+Tab back from the message box.
    page.get_by_role("textbox", name="Message").focus()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "jump-latest"
    page.keyboard.press("Enter")
    page.wait_for_function(NEAR_BOTTOM)
    assert not jump.is_visible()
    assert page.evaluate("document.activeElement.id") == "message"
    # Following again: still at the bottom after more text came.
    length = len(last_assistant(page).inner_text())
    page.wait_for_function(f"() => {REPLY_LENGTH} > {length + 400} && ({NEAR_BOTTOM})()")
    wait_for_idle(page)
    assert not jump.is_visible()
    assert page.errors == []


def action_names(reply) -> list[str]:
    return [
        button.get_attribute("aria-label") or button.inner_text()
        for button in reply.locator(".reply-footer button").all()
    ]


@pytest.mark.parametrize(
    ("scenario", "has_text"),
    [
        (Scenario(text="Half an answer", reasoning_tokens=0, finish_reason="network_error"), True),
        (Scenario(tokens=40, reasoning_tokens=0, cut_after=10), True),
        (Scenario(status=429, retry_after="3600"), False),
    ],
    ids=["network-error", "cut-stream", "429"],
)
def test_a_failed_reply_offers_only_what_applies(page, base, fake, scenario, has_text) -> None:
    fake.scenario = scenario
    sign_up(page, base, f"jon-{scenario.status or scenario.cut_after or 'net'}")
    send(page, "Try this")
    reply = last_assistant(page)
    reply.get_by_role("alert").wait_for()
    wait_for_idle(page)

    names = action_names(reply)
    assert names.count("Retry this reply") == 1
    assert ("Copy reply" in names) is has_text
    for absent in ("Regenerate reply", "Good reply", "Bad reply"):
        assert absent not in names, names
    # Retry sits in the notice, after its text.
    assert reply.get_by_role("alert").get_by_role("button", name="Retry this reply").count() == 1
    assert page.errors == []


def test_message_actions_are_icon_buttons_with_names_and_tooltips(page, base, fake) -> None:
    fake.scenario = Scenario(text="First.", reasoning_tokens=0)
    sign_up(page, base, "kai")
    send(page, "One")
    wait_for_idle(page)
    fake.scenario = Scenario(text="Second.", reasoning_tokens=0)
    send(page, "Two")
    page.get_by_text("Second.").wait_for()
    wait_for_idle(page)

    icons = page.locator("#messages .icon-action")
    names = set()
    for button in icons.all():
        label = button.get_attribute("aria-label")
        assert label, button.evaluate("b => b.outerHTML")
        assert button.get_attribute("title") == label
        assert button.inner_text().strip() == ""
        assert button.locator("svg[aria-hidden=true]").count() == 1
        names.add(label)
    assert {
        "Edit message",
        "Copy message",
        "Copy reply",
        "Regenerate reply",
        "Good reply",
        "Bad reply",
    } <= names

    # An earlier reply's actions show on hover (and stay for the last one).
    first_copy = page.locator("article[data-role=assistant]").first.get_by_role(
        "button", name="Copy reply"
    )
    page.mouse.move(5, 5)
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector("
        "'article[data-role=assistant] .icon-action')).opacity === '0'"
    )
    first_copy.hover()
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector("
        "'article[data-role=assistant] .icon-action')).opacity === '1'"
    )
    assert page.errors == []


def test_a_thousand_messages_are_all_in_the_page_for_find(page, app, base) -> None:
    sign_up(page, base, "lea")
    seeded = app.manage(
        "shell", "-c", "from bench.page_scale import seed; print(seed('lea', 1000))"
    )
    conversation = seeded.strip().splitlines()[-1]
    page.goto(f"{base}/c/{conversation}/")
    wait_until_ready(page)

    # The last messages are in the page before the first frame, the older ones
    # just after it, in slices; the transcript is busy until they all are.
    page.wait_for_selector("#messages[aria-busy=false]", state="attached")
    assert page.locator("#messages > article").count() == 1000
    assert page.locator("#messages > article").first.text_content().startswith("Question 0?")
    # Times are written just after the first frame (the first date format is slow).
    last_time = page.locator("article[data-role=assistant] time.msg-time").last
    page.wait_for_function(
        "() => [...document.querySelectorAll('time.msg-time')].every(t => t.title && t.textContent)"
    )
    assert last_time.get_attribute("datetime")
    missing = page.evaluate(
        """() => {
          const text = document.getElementById('messages').textContent;
          const missing = [];
          for (let i = 0; i < 1000; i += 2) {
            if (!text.includes(`Question ${i}?`)) missing.push(`Question ${i}?`);
            if (!text.includes(`area_${i / 2}(2)`)) missing.push(`area_${i / 2}(2)`);
          }
          return missing;
        }"""
    )
    assert missing == []
    # The last messages are rendered (markdown, code, math); the browser's find
    # reaches the first ones too.
    last = page.locator("article[data-role=assistant]").last
    last.locator(".code-block").wait_for()
    last.locator(".math-display").wait_for()
    assert page.evaluate("window.find('Question 0?', false, true)")
    # Scrolled to the top, the first reply renders as it comes near.
    page.evaluate("document.getElementById('scroller').scrollTop = 0")
    page.locator("article[data-role=assistant]").first.locator(".code-block").wait_for()
    assert page.errors == []
