"""How replies look and how the page handles: markdown, math, images, links,
themes, the phone layout, keyboard shortcuts, and a 20,000-token reply.

Real Chromium against a real daphne worker and the loopback fake upstream.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import last_reply, needs_chromium, sign_up, wait_until_ready
from tests.servers import ROOT, glmweb_app

pytestmark = needs_chromium

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2"
    "21bc330000000049454e44ae426082"
)


class ImageHost(BaseHTTPRequestHandler):
    """Another origin with an image on it; records which paths were fetched."""

    fetched: list[str] = []

    def do_GET(self) -> None:
        ImageHost.fetched.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def site(fake: FakeUpstream, image_host: str) -> Iterator[str]:
    # The default policy lets images load from https: only; the test's image
    # host speaks plain http on loopback.
    policy = django_settings.CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' data: https:", f"img-src 'self' data: https: {image_host}"
    )
    with glmweb_app(fake.base_url, CONTENT_SECURITY_POLICY=policy) as app:
        yield app.start_worker("look")


def ask(page: object, text: str = "Show me") -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    page.get_by_role("button", name="Send").wait_for()
    page.locator("article[data-role=assistant]:not(.streaming)").last.wait_for()


# --- markdown ----------------------------------------------------------------


RICH = r"""# Plan

Some `inline code`, a [site](https://example.org/page) and an [inside link](/usage/).

```python
def area(r):
    return 3.14159 * r ** 2
```

| planet | moons |
|---|---|
| Earth | 1 |
| Mars | 2 |

Euler: $e^{i\pi} + 1 = 0$ and \(a^2 + b^2 = c^2\).

$$\int_0^1 x^2\,dx = \frac{1}{3}$$

\[ \sum_{n=1}^{\infty} \frac{1}{n^2} = \frac{\pi^2}{6} \]

Prices: $5 and $10 stay text. Bad math: $\frac{1}{$ ok.

[bad](javascript:window.pwned=1)
"""


def test_code_tables_links_and_math_render(page, site, fake) -> None:
    fake.scenario = Scenario(reasoning_tokens=0, text=RICH)
    sign_up(page, site, "mathilde")
    ask(page)
    reply = last_reply(page)

    block = reply.locator(".code-block")
    assert block.locator(".code-lang").inner_text() == "python"
    assert block.get_by_role("button", name="Copy").is_visible()
    assert block.locator("code .hljs-keyword").first.inner_text() == "def"
    assert reply.locator(".table-wrap table th").all_inner_texts() == ["planet", "moons"]

    external = reply.get_by_role("link", name="site")
    assert external.get_attribute("target") == "_blank"
    assert external.get_attribute("rel") == "noopener noreferrer"
    inside = reply.get_by_role("link", name="inside link")
    assert inside.get_attribute("target") is None
    assert reply.locator("a", has_text="bad").get_attribute("href") is None

    page.locator(".katex").first.wait_for()
    assert reply.locator(".math-inline .katex").count() == 2
    assert reply.locator(".math-display .katex-display").count() == 2
    assert reply.locator("annotation").first.text_content() == r"e^{i\pi} + 1 = 0"
    assert "$5 and $10 stay text" in reply.inner_text()
    assert reply.locator(".math-error").count() == 1
    assert page.evaluate("window.pwned") is None
    assert page.errors == []


def test_external_images_load_only_when_asked(page, site, fake, image_host) -> None:
    ImageHost.fetched.clear()
    fake.scenario = Scenario(
        reasoning_tokens=0,
        text=f"A cat: ![a cat]({image_host}/cat.png?secret=conversation)\n\n"
        f"![tracker]({image_host}/pixel.png)\n\n![inline](data:image/png;base64,AAAA)",
    )
    sign_up(page, site, "imogen")
    ask(page)
    reply = last_reply(page)

    assert reply.locator("img").count() == 0
    load = reply.get_by_role("button", name="Load image from 127.0.0.1").first
    assert load.is_visible()
    assert "a cat" in load.inner_text()
    assert "embedded image not shown" in reply.inner_text()
    assert ImageHost.fetched == []

    load.click()
    image = reply.locator("img")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('.reply-body img').complete")
    assert image.get_attribute("alt") == "a cat"
    assert image.evaluate("img => img.naturalWidth") == 1
    assert ImageHost.fetched == ["/cat.png?secret=conversation"]  # not the tracker
    assert page.errors == []


def test_a_finished_code_block_keeps_its_highlighting_while_the_reply_streams(
    page, site, fake
) -> None:
    code = "```js\nconst x = 1;\n```\n\n"
    fake.scenario = Scenario(reasoning_tokens=0, delay=0.01, text=code + "word " * 400)
    sign_up(page, site, "streamy")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Stream")
    box.press("Enter")
    page.get_by_role("button", name="Stop").wait_for()
    page.wait_for_function("() => document.querySelector('.reply-body p')")
    keyword = page.locator(".reply-body .hljs-keyword").first.element_handle()
    page.wait_for_function("() => document.querySelector('.reply-body').innerText.length > 600")
    # Same node: the finished block was not rebuilt on each frame.
    assert keyword.evaluate("node => node.isConnected")
    page.get_by_role("button", name="Send").wait_for()
    assert last_reply(page).inner_text().count("word") == 400


def test_a_streamed_reply_ends_up_exactly_as_a_reload_renders_it(page, site, fake) -> None:
    text = RICH + "\n1. one\n2. two\n\n   still two\n3. three\n\n> quoted\n\n" + long_markdown(300)
    fake.scenario = Scenario(reasoning_tokens=0, delay=0.002, text=text)
    sign_up(page, site, "echo")
    ask(page, "Stream it")
    page.locator(".katex").first.wait_for()
    streamed = last_reply(page).inner_html()

    page.reload()
    wait_until_ready(page)
    page.locator(".katex").first.wait_for()
    assert last_reply(page).inner_html() == streamed


# --- themes ------------------------------------------------------------------


def background(page: object) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_theme_follows_the_system_and_the_choice_sticks(browser, site) -> None:
    context = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_up(page, site, "theo")
    dark = background(page)
    assert page.evaluate("document.documentElement.dataset.theme") is None
    page.emulate_media(color_scheme="light")
    light = background(page)
    assert dark != light

    page.locator(".account summary").click()
    page.get_by_role("radio", name="Dark").check()
    assert background(page) == dark
    page.reload()
    wait_until_ready(page)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert background(page) == dark
    assert page.get_by_role("radio", name="Dark", include_hidden=True).is_checked()

    page.locator(".account summary").click()
    page.get_by_role("radio", name="System").check()
    assert background(page) == light
    assert page.evaluate("localStorage.getItem('glmweb:theme')") is None
    context.close()


# --- phone -------------------------------------------------------------------


def test_phone_layout_fits_and_the_sidebar_slides_over(browser, site, fake) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    fake.scenario = Scenario(reasoning_tokens=0, text=RICH)
    sign_up(page, site, "phoebe")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Show me")
    page.get_by_role("button", name="Send").click()
    page.locator("article[data-role=assistant]:not(.streaming)").last.wait_for()
    page.get_by_role("button", name="Send").wait_for()

    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not page.locator("#sidebar").is_visible()
    assert small_tap_targets(page) == []

    page.get_by_role("button", name="Open sidebar").click()
    sidebar = page.locator("#sidebar")
    sidebar.wait_for()
    page.wait_for_function(
        "() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0"
    )
    assert page.locator("#sidebar-backdrop").is_visible()
    assert small_tap_targets(page) == []
    page.mouse.click(370, 400)  # on the backdrop
    sidebar.wait_for(state="hidden")
    context.close()


def small_tap_targets(page: object) -> list[str]:
    small = page.evaluate(SMALL_TAP_TARGETS)
    print("small tap targets:", small)
    return small


# Visible buttons and links smaller than 40 px either way (inline links in text excepted).
SMALL_TAP_TARGETS = """() => [...document.querySelectorAll('button, a, summary, [role=button]')]
  .filter(el => el.checkVisibility({visibilityProperty: true}))
  .filter(el => !el.closest('.md p, .md li, .md td, .md th'))
  .filter(el => { const r = el.getBoundingClientRect();
                  return r.width > 0 && (r.width < 40 || r.height < 40); })
  .map(el => { const r = el.getBoundingClientRect();
               const name = (el.getAttribute('aria-label') || el.textContent).trim().slice(0, 30);
               return `${name} ${Math.round(r.width)}x${Math.round(r.height)}`; })"""


# --- keyboard ----------------------------------------------------------------


def test_keyboard_shortcuts_and_the_help_dialog(page, site, fake) -> None:
    fake.scenario = Scenario(reasoning_tokens=0, tokens=5)
    sign_up(page, site, "kira")
    ask(page, "First chat")
    page.wait_for_url("**/c/*/")
    box = page.get_by_role("textbox", name="Message")

    page.locator("body").click(position={"x": 640, "y": 300})
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "message"
    assert box.input_value() == ""

    page.locator("h1").click()
    page.keyboard.press("Shift+Escape")
    assert page.evaluate("document.activeElement.id") == "message"

    page.keyboard.press("Control+/")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    dialog.wait_for()
    assert "New chat" in dialog.inner_text()
    assert page.evaluate("document.activeElement.closest('dialog') !== null")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "message"

    page.get_by_role("button", name="Keyboard shortcuts").click()
    dialog.wait_for()
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Keyboard shortcuts"
    )

    assert page.locator("#sidebar").is_visible()
    page.keyboard.press("Control+Shift+S")
    page.locator("#sidebar").wait_for(state="hidden")
    page.keyboard.press("Control+Shift+S")
    page.locator("#sidebar").wait_for()

    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(f"{site}/")
    wait_until_ready(page)
    assert page.locator("#conversation-title").inner_text() == "New chat"
    assert page.errors == []


# --- a long reply --------------------------------------------------------------

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog while the model keeps writing, "
    "explaining each step with care and a `small` aside, **bold** words and *italic* ones. "
)


def long_markdown(words: int) -> str:
    """Realistic markdown (prose, lists, code, tables) of about `words` tokens."""
    parts: list[str] = []
    section = 0
    while sum(len(part.split()) for part in parts) < words:
        section += 1
        parts.append(f"## Section {section}\n\n{PARAGRAPH * 4}\n\n")
        parts.append("".join(f"- point {i}: {PARAGRAPH}\n" for i in range(4)) + "\n")
        body = "\n".join(f"    total = total + {i} * weight({i!r})" for i in range(12))
        code = f"def step_{section}(weight):\n    total = 0\n{body}\n    return total"
        parts.append(f"```python\n{code}\n```\n\n")
        if section % 3 == 0:
            rows = "".join(f"| {i} | value {i} | $x_{i}$ |\n" for i in range(6))
            parts.append(f"| n | name | math |\n|---|---|---|\n{rows}\n")
    return "".join(parts)


OBSERVE = """() => {
  window.__perf = {longtasks: [], events: []};
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__perf.longtasks.push(e.duration);
  }).observe({type: 'longtask'});
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__perf.events.push([e.name, e.duration]);
  }).observe({type: 'event', durationThreshold: 16});
}"""


def test_a_20k_token_reply_keeps_the_page_responsive(page, site, fake) -> None:
    text = long_markdown(20000)
    tokens = len(content_tokens(Scenario(text=text)))
    fake.scenario = Scenario(reasoning_tokens=300, text=text, delay=0.0004)
    sign_up(page, site, "marathon")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Write at length")
    page.evaluate(OBSERVE)
    box.press("Enter")
    page.get_by_role("button", name="Stop").wait_for()
    page.wait_for_function(
        "() => (document.querySelector('.reply-body')?.innerText || '').length > 20000"
    )

    # Mid-stream the page still takes input: typing, and a click that toggles.
    streaming_while_typing = page.get_by_role("button", name="Stop").is_visible()
    box.press_sequentially("still here", delay=30)
    thinking = page.locator("details.thinking").last
    thinking.locator("summary").click()
    thinking_opened = thinking.evaluate("d => d.open")
    still_streaming = page.get_by_role("button", name="Stop").is_visible()

    page.get_by_role("button", name="Send").wait_for(timeout=180_000)
    assert box.input_value() == "still here"
    assert thinking_opened
    # As a person copies it: innerText leaves out the blocks scrolled off screen
    # (content-visibility skips them); selection, find and the a11y tree don't.
    copied = last_reply(page).evaluate(
        "body => { getSelection().selectAllChildren(body); return getSelection().toString(); }"
    )
    assert len(copied) > len(text) * 0.8

    perf = page.evaluate("window.__perf")
    tasks = perf["longtasks"]
    numbers = {
        "tokens": tokens,
        "chars": len(text),
        "interacted_while_streaming": streaming_while_typing and still_streaming,
        "longtask_count": len(tasks),
        "longtask_total_ms": round(sum(tasks)),
        "longtask_max_ms": round(max(tasks, default=0)),
        "slow_events": len(perf["events"]),
        "slowest_event_ms": round(max((d for _, d in perf["events"]), default=0)),
    }
    print("page-20k:", json.dumps(numbers))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    Path(results / "page-20k.json").write_text(json.dumps(numbers, indent=2) + "\n")
    assert page.errors == []
