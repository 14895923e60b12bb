"""The admin's screenshots: docs/screenshots/admin-{screen}-{theme}-{device}.png.

The landing dashboard, the token usage table, a person's usage page and their
account page, a conversation under review, and the report by group and by
model; light and dark (Django admin's own theme, kept in localStorage), on a
1366 by 800 laptop and a 390 by 844 phone. scripts/screenshots.py takes them
after the chat's screens; this script alone takes only these, on a database of
its own (a month of seeded use by a team with names, limits and prices):

    .venv/bin/python scripts/admin_screenshots.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Browser, Page, sync_playwright

from bench.fake_upstream import FakeUpstream

# scripts.screenshots sets Django up, before tests.servers needs it.
from scripts import screenshots
from scripts.screenshots import CHROMIUM, OUT, ROOT
from tests.servers import PASSWORD, App, glmweb_app

# Prices first, so that the ledger the seed rebuilds has costs.
PRICES = """
from decimal import Decimal
from chat.models import ChatModel
for position, (name, label, prompt, completion) in enumerate([
    ("glm-5", "GLM-5", "1.00", "3.20"), ("glm-4.6", "GLM-4.6", "0.60", "2.20"),
    ("glm-4.5-air", "GLM-4.5 Air", "0.20", "1.10"),
]):
    ChatModel.objects.update_or_create(name=name, defaults={
        "label": label, "position": position, "input_price_per_million": Decimal(prompt),
        "output_price_per_million": Decimal(completion)})
"""

# A team as it looks after a month: names, addresses, two groups, some limits.
TEAM = """
from decimal import Decimal
from django.contrib.auth.models import Group, User
from chat.models import GroupPolicy, UserLimits
FIRST = ["Margaret", "Katherine", "Alan", "Grace", "Radia", "Edsger", "Barbara", "Donald"]
LAST = ["Hamilton", "Johnson", "Turing", "Hopper", "Perlman", "Dijkstra", "Liskov", "Knuth"]
# get_or_create: after the chat's screens (scripts/screenshots.py), "research" is there.
research = Group.objects.get_or_create(name="research")[0]
support = Group.objects.get_or_create(name="support")[0]
GroupPolicy.objects.update_or_create(group=research, defaults=dict(
    tokens_per_day=400000, tokens_per_month=6000000, monthly_budget=Decimal("40.00")))
GroupPolicy.objects.update_or_create(group=support, defaults=dict(
    tokens_per_day=150000, monthly_budget=Decimal("10.00")))
for i, user in enumerate(User.objects.filter(username__startswith="seed").order_by("id")):
    first, last = FIRST[i % 8], LAST[(i * 3) % 8]
    user.username = f"{first}.{last}{i // 8 or ''}".lower()
    user.first_name, user.last_name = first, last
    user.email = f"{user.username}@example.org"
    user.save()
    (research if i % 3 else support).user_set.add(user)
    if i == 2:
        UserLimits.objects.create(user=user, tokens_per_day=1000000, monthly_budget=Decimal(100))
"""

# The person and the conversation to show: the chat screenshots' "ada" and her
# newest chat when she is there, else the heaviest user and their longest chat.
CHOSEN = """
from django.db.models import Count, Sum
from chat.models import Conversation, DailyUsage
chats = Conversation.objects.filter(owner__username="ada").order_by("-created_at")
if not chats.exists():
    heaviest = (DailyUsage.objects.values("user_id").annotate(total=Sum("total_tokens"))
                .order_by("-total").first()["user_id"])
    chats = (Conversation.objects.filter(owner_id=heaviest).annotate(n=Count("messages"))
             .filter(n__lte=8).order_by("-n"))
chat = chats.first()
print(chat.owner_id, chat.pk)
"""


def seed_team(app: App) -> None:
    app.manage("shell", "-c", PRICES)
    app.manage("seed", "--users", "40", "--messages", "6000", "--days", "45", "--seed", "11")
    app.manage("shell", "-c", TEAM)
    app.create_user("admin", staff=True)


def screens(app: App) -> dict[str, str]:
    person, chat = app.manage("shell", "-c", CHOSEN).split()[-2:]
    return {
        "dashboard": "/admin/",
        "usage": "/admin/chat/dailyusage/",
        "person-usage": f"/admin/chat/dailyusage/user/{person}/",
        "person": f"/admin/auth/user/{person}/change/",
        "review": f"/admin/chat/conversation/{chat}/change/",
        "report-group": "/admin/chat/dailyusage/report/?by=group",
        "report-model": "/admin/chat/dailyusage/report/?by=model&window=30d",
    }


def log_in(page: Page, site: str) -> None:
    page.goto(f"{site}/admin/login/")
    page.locator("#id_username").fill("admin")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#site-name").wait_for()


def photograph_admin(browser: Browser, site: str, paths: dict[str, str]) -> None:
    for theme in ("light", "dark"):
        for device, options in screenshots.DEVICES.items():
            context = browser.new_context(color_scheme=theme, **options)
            # Django admin's theme switch keeps its choice here.
            context.add_init_script(f"localStorage.setItem('theme', '{theme}')")
            page = context.new_page()
            log_in(page, site)
            for screen, path in paths.items():
                page.goto(f"{site}{path}")
                page.wait_for_timeout(300)  # fonts and the theme settle
                name = f"admin-{screen}-{theme}-{device}.png"
                page.screenshot(path=OUT / name)
                print("wrote", (OUT / name).relative_to(ROOT))
            context.close()


def take(browser: Browser, app: App, site: str) -> None:
    """The admin's screens on a running glmweb (scripts/screenshots.py calls this)."""
    seed_team(app)
    photograph_admin(browser, site, screens(app))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with FakeUpstream().run_in_thread() as fake, glmweb_app(fake.base_url) as app:
        site = app.start_worker("admin-screenshots")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            take(browser, app, site)
            browser.close()


if __name__ == "__main__":
    main()
