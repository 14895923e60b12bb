"""The chat page at scale, in a real browser with the CPU throttled 4x.

`python -m bench.page_scale` seeds a 1,000-message conversation with code and
math (through the ORM, in a child process on the benchmark's database), starts
glmweb and the fake upstream as `bench.servers` does, and opens the
conversation in Debian's Chromium under Playwright with
`Emulation.setCPUThrottlingRate` 4. It prints JSON:

- **open**: when the page script said it was ready, when the frame after that
  was shown, when the main thread was last busy with a task over 50 ms (the
  page is interactive from then on: the TTI rule, with a 3 s quiet window),
  the longest task, and the tab's memory once settled, after a full GC (CDP
  `Runtime.getHeapUsage`: V8's heap and Blink's, where the DOM lives;
  `Performance.getMetrics` DOM nodes; the renderer process's RSS);
- **stream** (plain: one 20,000-word paragraph, the fake's default words;
  markdown: sections of headings, code, math and lists): a 20,000-token reply
  from the fake at 4,000 tokens/s in a new chat, throttled likewise: tasks over
  50 ms from the send until the reply is shown whole (a page that renders
  behind the text says so with `aria-busy`), the longest, and the seconds
  until the stream ended and until it was all shown.

Flags: `--messages`, `--tokens`, `--rate` (tokens/s), `--throttle`, `--parts`
(open,plain,markdown), `--json PATH`.
`--seed USER` is the child's job (seed and print the conversation id).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.servers import fake_upstream, glmweb, login_cookie, to_json

CHROMIUM = "/usr/bin/chromium"
QUIET_SECONDS = 3.0
READY = "() => document.getElementById('chat')?.dataset.ready === 'true'"

ANSWER = r"""Here is question {i} worked through, with **code**, a list and math.

```python
def area_{i}(r: float) -> float:
    # the circle of question {i}
    return 3.14159 * r ** 2
```

- First, note that $e^{{i\pi}} + 1 = 0$.
- Then apply it to case {i}.

$$\int_0^{{{i}}} x^2\,dx = \frac{{{i}^3}}{{3}}$$

So the answer to {i} is `area_{i}(2)`, as [the docs](https://example.org/{i}) say.
"""

STREAM_SECTION = r"""## Step {i}

Some **bold words**, `inline code`, math $x_{i}^2$ and a [link](https://example.org/{i}).

```js
function step{i}(x) {{
  return x * {i};
}}
```

- point one of {i}
- point two of {i}

"""

# Runs before the page's scripts: long tasks and the moment the page says it is ready.
OBSERVE = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
new MutationObserver((records, observer) => {
  const main = document.getElementById("chat");
  if (main && main.dataset.ready === "true" && window.__readyAt === undefined) {
    window.__readyAt = performance.now();
    requestAnimationFrame(() => setTimeout(() => { window.__shownAt = performance.now(); }));
    observer.disconnect();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""


def seed(username: str, count: int) -> str:
    """A conversation of `count` alternating messages with code and math; its id."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glmweb.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from bench.inproc import seed_conversation
    from chat.models import Message

    owner = get_user_model().objects.get(username=username)
    conversation = seed_conversation(owner, count)
    replies = conversation.messages.filter(role=Message.Role.ASSISTANT).order_by("created_at")
    for index, message in enumerate(replies):
        message.content = ANSWER.format(i=index)
    Message.objects.bulk_update(replies, ["content"])
    return str(conversation.id)


def renderer_rss(browser: Any) -> int:
    """The largest renderer process's RSS (the tab), via CDP and /proc."""
    session = browser.new_browser_cdp_session()
    processes = session.send("SystemInfo.getProcessInfo")["processInfo"]
    largest = 0
    for process in processes:
        if process["type"] != "renderer":
            continue
        status = Path(f"/proc/{process['id']}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]) * 1024)
    return largest


def tab_memory(cdp: Any) -> dict[str, Any]:
    """The tab's heaps after a full GC: V8's (JS) and Blink's (the DOM, `embedder`)."""
    cdp.send("Performance.enable")
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    js = heap["usedSize"]
    dom = heap.get("embedderHeapUsedSize", 0) + heap.get("backingStorageSize", 0)
    return {
        "js_heap_mb": round(js / 2**20, 1),
        "dom_heap_mb": round(dom / 2**20, 1),
        "js_and_dom_mb": round((js + dom) / 2**20, 1),
        "dom_nodes": int(metrics["Nodes"]),
    }


def wait_quiet(page: Any, timeout: float = 60.0) -> None:
    """Until no task over 50 ms has ended in the last QUIET_SECONDS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        quiet_since = page.evaluate(
            "() => { const t = window.__longTasks; const last = t.length ?"
            " t[t.length - 1][0] + t[t.length - 1][1] : 0;"
            " return (performance.now() - last) / 1000; }"
        )
        if quiet_since >= QUIET_SECONDS:
            return


def tasks_summary(tasks: list[list[float]], since: float = 0.0) -> dict[str, Any]:
    durations = [duration for start, duration in tasks if start >= since]
    return {
        "long_tasks": len(durations),
        "longest_task_ms": round(max(durations, default=0.0)),
        "long_task_total_ms": round(sum(durations)),
    }


def observed_page(browser: Any, url: str, cookie: str) -> tuple[Any, Any, Any, list[str]]:
    """A signed-in laptop-sized page whose long tasks are recorded (OBSERVE), its
    DevTools session, and the script errors it raises."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(OBSERVE)
    return context, page, context.new_cdp_session(page), errors


def open_conversation(browser: Any, url: str, cookie: str, throttle: float) -> dict[str, Any]:
    context, page, cdp, errors = observed_page(browser, url, cookie)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    page.goto(url, wait_until="load")
    page.wait_for_function(READY, polling=100, timeout=120_000)
    wait_quiet(page)
    timing = page.evaluate(
        "() => ({ ready: window.__readyAt, shown: window.__shownAt, tasks: window.__longTasks,"
        " articles: document.querySelectorAll('#messages > article').length,"
        " text: document.getElementById('messages').textContent.length })"
    )
    tasks = timing["tasks"]
    last_busy = max((start + duration for start, duration in tasks), default=0.0)
    memory = tab_memory(cdp)
    result = {
        "ready_ms": round(timing["ready"]),
        "last_message_shown_ms": round(timing["shown"]),
        "interactive_ms": round(max(timing["shown"], last_busy)),
        **tasks_summary(tasks),
        "articles": timing["articles"],
        "transcript_text_chars": timing["text"],
        **memory,
        "renderer_rss_mb": round(renderer_rss(browser) / 2**20, 1),
        "script_errors": errors,
    }
    context.close()
    return result


def stream_reply(
    browser: Any, url: str, cookie: str, throttle: float, upstream: str, scenario: dict[str, Any]
) -> dict[str, Any]:
    httpx.post(f"{upstream}/_fake/scenario", json=scenario).raise_for_status()
    context, page, cdp, errors = observed_page(browser, url, cookie)
    page.goto(url, wait_until="load")
    page.wait_for_function(READY, polling=100)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    page.wait_for_timeout(1000)
    began = page.evaluate("performance.now()")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Write a very long reply")
    started = time.monotonic()
    box.press("Enter")
    # Polled twice a second, not every frame: the waiting mustn't be what is measured.
    page.wait_for_function("() => !document.getElementById('stop').hidden", polling=100)
    page.wait_for_function(
        "() => !document.getElementById('send').hidden", polling=500, timeout=600_000
    )
    seconds = time.monotonic() - started
    # A reply whose rendering fell behind catches up (the new page says so with aria-busy).
    page.wait_for_function(
        "() => !document.querySelector('article[aria-busy=true]')", polling=500, timeout=600_000
    )
    page.wait_for_timeout(1000)
    shown = time.monotonic() - started
    tasks = page.evaluate("window.__longTasks")
    chars = page.evaluate(
        "document.querySelector('article[data-role=assistant] .reply-body').textContent.length"
    )
    memory = tab_memory(cdp)
    context.close()
    return {
        "seconds": round(seconds, 1),
        "shown_seconds": round(shown - 1.0, 1),
        "reply_chars": chars,
        **tasks_summary(tasks, since=began),
        **memory,
        "script_errors": errors,
    }


def markdown_reply(tokens: int) -> str:
    sections = []
    words = 0
    index = 0
    while words < tokens:
        section = STREAM_SECTION.format(i=index)
        sections.append(section)
        words += len(section.split())
        index += 1
    return "".join(sections)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with fake_upstream() as upstream, glmweb("sqlite", upstream, 20) as app:
        owner = app.create_users(1)[0]
        conversation = app.python(
            "bench.page_scale", "--seed", owner, "--messages", str(args.messages)
        )
        conversation = conversation.strip().splitlines()[-1]
        base = app.start_worker("page")
        cookie = login_cookie(base, owner)
        delay = 1.0 / args.rate
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                ],
            )
            result: dict[str, Any] = {"messages": args.messages, "throttle": args.throttle}
            if "open" in args.parts:
                print("opening the conversation", file=sys.stderr)
                url = f"{base}/c/{conversation}/"
                result["open"] = open_conversation(browser, url, cookie, args.throttle)
            replies = {
                "plain": {"tokens": args.tokens, "reasoning_tokens": 0, "delay": delay},
                "markdown": {
                    "text": markdown_reply(args.tokens),
                    "reasoning_tokens": 0,
                    "delay": delay,
                },
            }
            for name, scenario in replies.items():
                if name not in args.parts:
                    continue
                print(f"streaming a {name} reply", file=sys.stderr)
                streamed = stream_reply(
                    browser, f"{base}/", cookie, args.throttle, upstream, scenario
                )
                result[f"stream_{name}"] = {"tokens": args.tokens, "rate": args.rate, **streamed}
            browser.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=4000.0, help="tokens per second")
    parser.add_argument("--throttle", type=float, default=4.0)
    parser.add_argument(
        "--parts",
        type=lambda text: text.split(","),
        default=["open", "plain", "markdown"],
        help="which to measure, comma-separated: open, plain, markdown",
    )
    parser.add_argument("--json", default="")
    parser.add_argument("--seed", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        print(seed(args.seed, args.messages))
        return
    result = run(args)
    text = to_json(result)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
