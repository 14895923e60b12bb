"""Take the README's screenshots: docs/screenshots/{screen}-{theme}-{device}.png.

Starts the fake upstream and a glmweb worker on a fresh database (as the
end-to-end tests do), seeds a few chats and one rich conversation (thinking,
code, a table, math), and photographs each screen (the account menu, the archived chats and the
usage page after a month of use is added; last, the chat page under two
announcements) in Chromium, light and dark,
at desktop (1280 by 800) and phone (390 by 844) sizes. A screen the page doesn't
have (yet) is skipped. The rich conversation has a system prompt, so its header
shows the "Custom instructions" marker; the model picker is photographed open.
Last, the admin's screens (scripts/admin_screenshots.py, which also takes only
those on a database of its own).

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# tests.servers imports the project's models (through tests.conftest).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glmweb.settings")
import django  # noqa: E402

django.setup()

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from bench.fake_upstream import FakeUpstream, Scenario  # noqa: E402
from tests.servers import PASSWORD, glmweb_app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / "docs" / "screenshots"
DEVICES = {
    # The laptop: 1366 by 800, the width the pages and the admin's tables are made for.
    "desktop": {"viewport": {"width": 1366, "height": 800}, "device_scale_factor": 1},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}

OLDER_CHATS = [
    ("Plan a three-day trip to Kyoto", "Day one: Fushimi Inari at dawn, then Gion in the evening."),
    ("Explain Rust lifetimes simply", "A lifetime names how long a reference stays valid."),
    ("Draft a polite reminder email", "Subject: A gentle reminder about Friday's review."),
]

QUESTION = "How do I compute the area under x² from 0 to 1 in Python, and check it numerically?"

ANSWER = r"""The exact value comes from the antiderivative:
$\int_0^1 x^2\,dx = \left[\tfrac{x^3}{3}\right]_0^1$, so

$$\int_0^1 x^2\,dx = \frac{1}{3} \approx 0.3333$$

A midpoint Riemann sum gets there numerically:

```python
def midpoint_area(f, a: float, b: float, n: int = 1000) -> float:
    width = (b - a) / n
    return width * sum(f(a + (i + 0.5) * width) for i in range(n))

print(midpoint_area(lambda x: x * x, 0, 1))  # 0.33333325
```

How fast it converges:

| steps $n$ | estimate | error |
|---:|---:|---:|
| 10 | 0.332500 | 8.3e-4 |
| 100 | 0.333325 | 8.3e-6 |
| 1000 | 0.33333325 | 8.3e-8 |

The error shrinks like $1/n^2$, as the midpoint rule promises for smooth functions.
"""


MODELS = "glm-5:200000:thinking,glm-4.5-air:128000,glm-4.5-flash:128000"
LABELS = """
from chat.models import ChatModel
for name, label in [("glm-5", "GLM-5"), ("glm-4.5-air", "GLM-4.5 Air"),
                    ("glm-4.5-flash", "GLM-4.5 Flash")]:
    ChatModel.objects.filter(name=name).update(label=label)
"""
# The rich conversation (the newest) gets instructions: its header shows the marker.
INSTRUCTIONS = """
from chat.models import Conversation
chat = Conversation.objects.order_by("-created_at").first()
chat.system_prompt = "You are a patient maths tutor. Show the working."
chat.save(update_fields=["system_prompt"])
"""

ANNOUNCEMENTS = """
from chat.models import Announcement
Announcement.objects.create(
    title="Maintenance on Friday",
    level="warning",
    body="The chat is down from **18:00 to 19:00 UTC** while we upgrade the database.",
)
Announcement.objects.create(
    title="GLM-5 is now the default model",
    body="Older chats keep their model. [What changed](https://example.org/changelog)",
)
"""


# A month of use with gaps, a money budget, and a few archived chats, for the
# usage page and the sidebar's archived view.
USAGE_AND_ARCHIVE = """
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth.models import Group, User
from django.utils import timezone
from chat.models import Conversation, DailyUsage, GroupPolicy
from chat.usage import limits
ada = User.objects.get(username="ada")
team = Group.objects.create(name="research")
team.user_set.add(ada)
GroupPolicy.objects.create(group=team, monthly_budget=Decimal("20.00"), tokens_per_day=250000)
for days_ago, prompt, completion in [(1, 9000, 14000), (2, 3000, 5200), (5, 21000, 30000),
                                     (6, 4000, 2500), (13, 12000, 8000), (20, 800, 1500)]:
    DailyUsage.objects.create(user=ada, day=limits.today() - timedelta(days=days_ago),
        model="glm-5", prompt_tokens=prompt, completion_tokens=completion,
        total_tokens=prompt + completion,
        replies=4, cost=Decimal(prompt + 4 * completion) / 1_000_000)
for title, days_ago in [("Kitchen renovation quotes", 0), ("Old tax questions", 45)]:
    chat = Conversation.objects.create(owner=ada, title=title, archived=True)
    when = timezone.now() - timedelta(days=days_ago)
    Conversation.objects.filter(id=chat.id).update(updated_at=when)
"""


def log_in(page: Page, site: str) -> None:
    page.goto(f"{site}/accounts/login/")
    page.locator("#id_username").fill("ada")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    wait_until_ready(page)


def wait_until_ready(page: Page) -> None:
    page.locator("main#chat[data-ready=true]").wait_for()


def send(page: Page, site: str, fake: FakeUpstream, question: str, scenario: Scenario) -> None:
    fake.scenario = scenario
    page.goto(f"{site}/")
    wait_until_ready(page)
    page.get_by_role("textbox", name="Message").fill(question)
    page.get_by_role("button", name="Send").click()
    page.wait_for_url("**/c/*/")
    page.get_by_role("button", name="Send").wait_for()
    page.locator("article[data-role=assistant]:not(.streaming)").last.wait_for()


def seed(browser: Browser, site: str, fake: FakeUpstream) -> tuple[str, dict]:
    """The chats to show; returns the rich conversation's URL and a logged-in state."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, site)
    for question, answer in OLDER_CHATS:
        send(page, site, fake, question, Scenario(reasoning_tokens=0, text=answer))
    send(page, site, fake, QUESTION, Scenario(reasoning_tokens=40, text=ANSWER))
    url = page.url
    state = context.storage_state()
    context.close()
    return url, state


def shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(350)  # let transitions and fonts settle
    page.screenshot(path=OUT / f"{name}.png")
    print("wrote", OUT.relative_to(ROOT) / f"{name}.png")


def open_settings(page: Page, device: str) -> None:
    """The settings dialog: from the header's button, or "More options" on a phone."""
    if device == "phone":
        page.get_by_role("button", name="More options").click()
        page.get_by_role("menuitem", name="Chat settings").click()
    else:
        page.get_by_role("button", name="Chat settings").click()
    page.wait_for_function("() => document.getElementById('settings-model').options.length > 0")


def photograph(
    browser: Browser, site: str, chat_url: str, state: dict, theme: str, device: str
) -> None:
    context = browser.new_context(color_scheme=theme, storage_state=state, **DEVICES[device])
    page = context.new_page()
    suffix = f"{theme}-{device}"

    page.goto(f"{site}/")
    wait_until_ready(page)
    shoot(page, f"empty-{suffix}")

    page.goto(chat_url)
    wait_until_ready(page)
    page.locator(".katex").first.wait_for()
    page.evaluate("document.querySelector('article[data-role=user]').scrollIntoView()")
    shoot(page, f"chat-{suffix}")

    if device == "phone":
        page.get_by_role("button", name="Open sidebar").click()
        page.wait_for_function(
            "() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0"
        )
        shoot(page, f"sidebar-open-{suffix}")
        page.keyboard.press("Escape")

    page.get_by_role("button", name="Model").click()
    shoot(page, f"models-{suffix}")
    page.keyboard.press("Escape")

    if device == "phone":
        page.get_by_role("button", name="More options").click()
        shoot(page, f"more-{suffix}")
        page.keyboard.press("Escape")

    open_settings(page, device)
    shoot(page, f"settings-{suffix}")
    context.close()


def photograph_sign_in(browser: Browser, site: str, theme: str, device: str) -> None:
    """What a newcomer sees first: the log-in page and the sign-up form."""
    context = browser.new_context(color_scheme=theme, **DEVICES[device])
    page = context.new_page()
    for name, path in (("login", "/accounts/login/"), ("signup", "/accounts/signup/")):
        page.goto(f"{site}{path}")
        shoot(page, f"{name}-{theme}-{device}")
    context.close()


def photograph_announcements(
    browser: Browser, site: str, state: dict, theme: str, device: str
) -> None:
    context = browser.new_context(color_scheme=theme, storage_state=state, **DEVICES[device])
    page = context.new_page()
    page.goto(f"{site}/")
    wait_until_ready(page)
    shoot(page, f"announcements-{theme}-{device}")
    context.close()


def photograph_account_and_usage(
    browser: Browser, site: str, state: dict, theme: str, device: str
) -> None:
    """The account menu, the archived chats and the usage page."""
    context = browser.new_context(color_scheme=theme, storage_state=state, **DEVICES[device])
    page = context.new_page()
    suffix = f"{theme}-{device}"
    page.goto(f"{site}/")
    wait_until_ready(page)
    if device == "phone":
        page.get_by_role("button", name="Open sidebar").click()
        page.wait_for_function(
            "() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0"
        )
    page.locator("details.account summary").click()
    shoot(page, f"account-menu-{suffix}")
    page.locator("details.account summary").click()
    page.get_by_role("button", name="Archived chats").click()
    page.locator(".conv-group").first.wait_for()
    shoot(page, f"archived-{suffix}")

    page.goto(f"{site}/usage/")
    page.wait_for_timeout(350)
    page.screenshot(path=OUT / f"usage-{suffix}.png", full_page=True)
    print("wrote", OUT.relative_to(ROOT) / f"usage-{suffix}.png")
    context.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        FakeUpstream().run_in_thread() as fake,
        glmweb_app(fake.base_url, GLMWEB_MODELS=MODELS) as app,
    ):
        app.manage("shell", "-c", LABELS)
        site = app.start_worker("screenshots")
        app.create_user("ada")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            for theme in ("light", "dark"):
                for device in DEVICES:
                    photograph_sign_in(browser, site, theme, device)
            chat_url, state = seed(browser, site, fake)
            app.manage("shell", "-c", INSTRUCTIONS)
            for theme in ("light", "dark"):
                for device in DEVICES:
                    photograph(browser, site, chat_url, state, theme, device)
            app.manage("shell", "-c", USAGE_AND_ARCHIVE)
            for theme in ("light", "dark"):
                for device in DEVICES:
                    photograph_account_and_usage(browser, site, state, theme, device)
            # Last, so that no other screen shows the banners.
            app.manage("shell", "-c", ANNOUNCEMENTS)
            for theme in ("light", "dark"):
                for device in DEVICES:
                    photograph_announcements(browser, site, state, theme, device)
            # Here: scripts/admin_screenshots.py imports this module's constants.
            from scripts import admin_screenshots

            admin_screenshots.take(browser, app, site)
            browser.close()


if __name__ == "__main__":
    main()
