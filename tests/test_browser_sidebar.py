"""The sidebar in a real Chromium: a generated title arriving live, rename, pin,
archive, delete through the dialog, search, export and import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fake_upstream import FakeUpstream, Scenario
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import needs_chromium, sign_up, wait_until_ready
from tests.servers import glmweb_app

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site(fake: FakeUpstream) -> Iterator[str]:
    with glmweb_app(fake.base_url, GLMWEB_GENERATED_TITLES="true") as app:
        yield app.start_worker("sidebar")


def chatgpt_file(folder: Path) -> Path:
    def conversation(title: str, question: str, answer: str, when: float) -> dict:
        return {
            "title": title,
            "create_time": when,
            "update_time": when,
            "current_node": "a",
            "mapping": {
                "root": {"message": None, "parent": None, "children": ["q"]},
                "q": {
                    "message": {"author": {"role": "user"}, "content": {"parts": [question]}},
                    "parent": "root",
                    "children": ["a"],
                },
                "a": {
                    "message": {"author": {"role": "assistant"}, "content": {"parts": [answer]}},
                    "parent": "q",
                    "children": [],
                },
            },
        }

    path = folder / "conversations.json"
    chats = [
        conversation("Sourdough", "How long should dough proof?", "About 4 hours.", 1.7e9),
        conversation("Bike repair", "My chain skips under load", "Check the cassette.", 1.7e9),
        conversation("Garden", "When to plant garlic?", "In autumn, before frost.", 1.7e9),
    ]
    path.write_text(json.dumps(chats))
    return path


def sidebar_link(page, title: str):
    return page.locator("#conversation-groups a.conv-link", has_text=title)


def open_menu(page, title: str) -> None:
    page.get_by_role("button", name=f"Options for {title}", exact=True).click()
    page.get_by_role("menu").wait_for()


def import_file(page, path: Path) -> None:
    page.locator(".account summary").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Import chats…").click()
    chooser.value.set_files(str(path))


def test_a_generated_title_arrives_live_and_rename_replaces_it(page, site, fake) -> None:
    fake.enqueue(Scenario(tokens=20), Scenario(text="“Trip to Lisbon”", reasoning_tokens=0))
    sign_up(page, site, "tess")

    box = page.get_by_role("textbox", name="Message")
    box.fill("What should I see in Lisbon over a long weekend?")
    box.press("Enter")

    sidebar_link(page, "Trip to Lisbon").wait_for()
    assert page.locator("#conversation-title").inner_text() == "Trip to Lisbon"

    open_menu(page, "Trip to Lisbon")
    page.get_by_role("menuitem", name="Rename").click()
    rename = page.get_by_role("textbox", name="New title")
    rename.fill("Never mind")
    rename.press("Escape")
    assert sidebar_link(page, "Trip to Lisbon").is_visible()
    assert page.locator("#conversation-title").inner_text() == "Trip to Lisbon"

    open_menu(page, "Trip to Lisbon")
    page.get_by_role("menuitem", name="Rename").click()
    rename.fill("Lisbon, my way")
    rename.press("Enter")
    sidebar_link(page, "Lisbon, my way").wait_for()
    page.locator("#conversation-title", has_text="Lisbon, my way").wait_for()

    page.reload()
    wait_until_ready(page)
    assert sidebar_link(page, "Lisbon, my way").is_visible()
    assert page.errors == []


def test_import_pin_archive_and_delete_with_the_dialog(page, site, tmp_path) -> None:
    sign_up(page, site, "ivan")
    import_file(page, chatgpt_file(tmp_path))
    page.get_by_text("Imported 3 conversations.").wait_for()
    for title in ("Sourdough", "Bike repair", "Garden"):
        sidebar_link(page, title).wait_for()

    open_menu(page, "Garden")
    page.get_by_role("menuitem", name="Pin").click()
    pinned = page.locator('.conv-group[data-group="Pinned"]')
    pinned.locator("a", has_text="Garden").wait_for()
    assert page.locator(".conv-group").first.get_attribute("data-group") == "Pinned"

    open_menu(page, "Bike repair")
    page.get_by_role("menuitem", name="Archive").click()
    sidebar_link(page, "Bike repair").wait_for(state="detached")
    page.get_by_role("button", name="Archived chats").click()
    sidebar_link(page, "Bike repair").wait_for()
    assert sidebar_link(page, "Sourdough").count() == 0
    open_menu(page, "Bike repair")
    page.get_by_role("menuitem", name="Unarchive").click()
    sidebar_link(page, "Bike repair").wait_for(state="detached")
    page.get_by_role("button", name="Back to chats").click()
    sidebar_link(page, "Bike repair").wait_for()

    open_menu(page, "Sourdough")
    page.get_by_role("menuitem", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete chat?")
    dialog.wait_for()
    assert page.evaluate("document.activeElement.textContent") == "Cancel"
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    page.wait_for_function(
        "document.activeElement?.getAttribute('aria-label') === 'Options for Sourdough'"
    )
    assert sidebar_link(page, "Sourdough").is_visible()

    open_menu(page, "Sourdough")
    page.get_by_role("menuitem", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    sidebar_link(page, "Sourdough").wait_for(state="detached")

    page.reload()
    wait_until_ready(page)
    assert sidebar_link(page, "Sourdough").count() == 0
    assert sidebar_link(page, "Bike repair").is_visible()

    # The topbar's delete button asks through the same dialog, then goes home.
    sidebar_link(page, "Garden").click()
    wait_until_ready(page)
    page.get_by_role("button", name="Delete conversation").click()
    dialog.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{site}/")
    assert sidebar_link(page, "Garden").count() == 0
    assert page.errors == []


def test_search_finds_message_text_and_escape_clears_it(page, site, tmp_path) -> None:
    sign_up(page, site, "sara")
    import_file(page, chatgpt_file(tmp_path))
    sidebar_link(page, "Garden").wait_for()

    search = page.get_by_role("searchbox", name="Search chats")
    search.fill("cassette")
    result = page.locator("#search-results .search-link")
    result.first.wait_for()
    assert result.count() == 1
    assert "Bike repair" in result.inner_text()
    assert page.locator("#search-results mark").first.inner_text() == "cassette"
    assert not page.locator("#conversation-groups").is_visible()

    search.press("Escape")
    assert search.input_value() == ""
    page.locator("#conversation-groups").wait_for()
    assert not page.locator("#search-results").is_visible()
    assert page.errors == []


def test_export_downloads_json_and_markdown(page, site, tmp_path) -> None:
    sign_up(page, site, "edda")
    import_file(page, chatgpt_file(tmp_path))
    sidebar_link(page, "Sourdough").wait_for()

    open_menu(page, "Sourdough")
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export JSON").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert data["format"] == "glmweb.conversation.v1"
    assert [m["content"] for m in data["messages"]] == [
        "How long should dough proof?",
        "About 4 hours.",
    ]

    open_menu(page, "Sourdough")
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export Markdown").click()
    assert download.value.suggested_filename == "sourdough.md"
    assert "About 4 hours." in Path(download.value.path()).read_text()

    page.locator(".account summary").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all my data").click()
    everything = json.loads(Path(download.value.path()).read_text())
    assert len(everything["conversations"]) == 3
    assert page.errors == []


def test_the_chat_menu_works_from_the_keyboard(page, site, tmp_path) -> None:
    sign_up(page, site, "kit")
    import_file(page, chatgpt_file(tmp_path))
    sidebar_link(page, "Garden").wait_for()

    open_menu(page, "Garden")
    focused = "document.activeElement.textContent.trim()"
    page.wait_for_function(f"{focused} === 'Rename'")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == "Pin"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # past the first: round to the last
    assert page.evaluate(focused) == "Delete"
    page.keyboard.press("Escape")
    page.get_by_role("menu").wait_for(state="hidden")
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert label == "Options for Garden"
