"""axe-core finds no serious or critical accessibility problem on any page,
at desktop and phone sizes, in light and dark.

axe-core is vendored in static/vendor/ (scripts/vendor.sh) but linked by no
page: the test injects it, in a context that bypasses the CSP for that.
"""

from __future__ import annotations

import pytest

from bench.fake_upstream import Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import needs_chromium, sign_up
from tests.servers import ROOT

pytestmark = needs_chromium

AXE = ROOT / "static" / "vendor" / "axe-core-4.14.1.min.js"

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

TRANSCRIPT = r"""Here is the plan, with **code**, a table and math.

```python
def area(r: float) -> float:
    return 3.14159 * r ** 2  # the circle
```

| planet | moons |
|---|---|
| Earth | 1 |
| Mars | 2 |

Euler: $e^{i\pi} + 1 = 0$, and [a link](https://example.org/).

$$\int_0^1 x^2\,dx = \frac{1}{3}$$
"""

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5)
                         .map(n => n.target.join(' ') + ' — ' + n.failureSummary)}));
}"""


def violations(page: object) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_no_serious_accessibility_violations(browser, site, fake, size, scheme) -> None:
    context = browser.new_context(
        viewport=SIZES[size],
        color_scheme=scheme,
        bypass_csp=True,  # to inject axe; the pages' own CSP is tested elsewhere
        has_touch=size == "phone",
        is_mobile=size == "phone",
    )
    page = context.new_page()
    found: dict[str, list[dict]] = {}

    page.goto(f"{site}/accounts/login/")
    found["login"] = violations(page)
    page.goto(f"{site}/accounts/signup/")
    found["sign-up"] = violations(page)

    sign_up(page, site, f"ada-{size}-{scheme}")
    found["empty chat"] = violations(page)

    fake.scenario = Scenario(reasoning_tokens=30, text=TRANSCRIPT)
    page.get_by_role("textbox", name="Message").fill("Show me everything")
    page.get_by_role("button", name="Send").click()
    page.locator("article[data-role=assistant]:not(.streaming)").last.wait_for()
    page.get_by_role("button", name="Send").wait_for()
    page.locator(".katex").first.wait_for()
    page.locator("details.thinking summary").first.click()
    found["chat"] = violations(page)

    page.get_by_role("button", name="Model").click()
    page.get_by_role("listbox", name="Model").wait_for()
    found["model picker"] = violations(page)
    page.keyboard.press("Escape")

    if size == "phone":  # the header's tools are under "More options" there
        page.get_by_role("button", name="More options").click()
        found["more options"] = violations(page)
        page.get_by_role("menuitem", name="Keyboard shortcuts").click()
    else:
        page.get_by_role("button", name="Keyboard shortcuts").click()
    page.get_by_role("dialog", name="Keyboard shortcuts").wait_for()
    found["shortcuts dialog"] = violations(page)
    page.keyboard.press("Escape")

    if size == "phone":
        page.get_by_role("button", name="Open sidebar").click()
        page.wait_for_function(
            "() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0"
        )
        found["sidebar open"] = violations(page)

    page.goto(f"{site}/usage/")
    found["usage"] = violations(page)
    context.close()

    found = {name: found_here for name, found_here in found.items() if found_here}
    for name, problems in found.items():
        for problem in problems:
            print(f"[{size} {scheme}] {name}: {problem['id']} ({problem['impact']})")
            print("    ", problem["help"])
            for node in problem["nodes"]:
                print("    ", node.replace("\n", " "))
    assert found == {}
