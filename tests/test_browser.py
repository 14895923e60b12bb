"""What a person does, in a real Chromium, against glmweb under daphne.

Playwright drives Debian's /usr/bin/chromium (its own browser download does
not work everywhere); `make test` installs it when run as root.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import (
    last_reply,
    needs_chromium,
    reply_lengths_while_streaming,
    sign_up,
    wait_until_ready,
)
from tests.conftest import hosted
from tests.servers import ROOT, free_port, glmweb_app, wait_for_http

NGINX = "/usr/sbin/nginx"

pytestmark = needs_chromium


def test_sign_up_chat_watch_it_stream_and_find_it_after_reload(page, site, fake) -> None:
    fake.scenario = Scenario(tokens=80, reasoning_tokens=10, delay=0.03)
    expected = "".join(content_tokens(fake.scenario)).strip()
    sign_up(page, site, "dora")

    box = page.get_by_role("textbox", name="Message")
    box.fill("Hello, GLM")
    box.press("Enter")
    lengths = reply_lengths_while_streaming(page)

    assert len({n for n in lengths if 0 < n < len(expected)}) >= 3, "arrived in several steps"
    expect(last_reply(page)).to_have_text(expected, use_inner_text=True)
    assert box.input_value() == ""
    assert page.get_by_text("Thinking").first.is_visible()
    page.wait_for_url("**/c/*/")

    page.reload()
    wait_until_ready(page)
    question = page.locator("article[data-role=user] .bubble").first
    assert question.inner_text().strip() == "Hello, GLM"
    expect(last_reply(page)).to_have_text(expected, use_inner_text=True)
    assert page.get_by_role("link", name="Hello, GLM").is_visible()
    assert page.errors == []


def test_shift_enter_adds_a_line_and_stop_keeps_the_partial_reply(page, site, fake) -> None:
    fake.scenario = Scenario(tokens=2000, reasoning_tokens=0, delay=0.03)
    sign_up(page, site, "eve")
    box = page.get_by_role("textbox", name="Message")
    box.fill("First line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "First line\nsecond line"

    box.press("Enter")
    page.wait_for_function(
        "() => (document.querySelector('article[data-role=assistant] .reply-body')"
        "?.innerText || '').length > 40"
    )
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped").first.wait_for()
    partial = last_reply(page).inner_text().strip()

    full = "".join(content_tokens(fake.scenario)).strip()
    assert 40 <= len(partial) < len(full)
    page.wait_for_url("**/c/*/")
    page.reload()
    wait_until_ready(page)
    expect(last_reply(page)).to_have_text(partial, use_inner_text=True)
    assert page.get_by_text("Stopped").first.is_visible()
    assert page.errors == []


def test_model_output_is_sanitized(page, site, fake) -> None:
    fake.scenario = Scenario(
        reasoning_tokens=0,
        text='**bold** <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> '
        "[link](javascript:window.pwned=3)\n\n```python\nprint('hi')\n```\n",
    )
    sign_up(page, site, "frank")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Show me markdown")
    box.press("Enter")
    reply_lengths_while_streaming(page)

    reply = last_reply(page)
    assert reply.locator("strong").inner_text() == "bold"
    assert reply.locator("pre code").count() == 1
    assert reply.locator("script, img[onerror]").count() == 0
    hrefs = reply.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not any(href and href.startswith("javascript:") for href in hrefs)
    assert page.evaluate("window.pwned") is None


def test_the_send_button_and_escape_stop(page, site, fake) -> None:
    fake.scenario = Scenario(tokens=2000, reasoning_tokens=0, delay=0.03)
    sign_up(page, site, "gina")
    page.get_by_role("textbox", name="Message").fill("Go on and on")
    page.get_by_role("button", name="Send").click()
    page.get_by_role("button", name="Stop").wait_for()
    page.wait_for_function(
        "() => (document.querySelector('article[data-role=assistant] .reply-body')"
        "?.innerText || '').length > 10"
    )
    page.keyboard.press("Escape")
    page.get_by_text("Stopped").first.wait_for()
    assert page.get_by_role("button", name="Send").is_visible()


# --- Through nginx, in front of two production-configured workers ----------------


def render_nginx_config(folder: Path, listen: int, ports: list[int], static_root: str) -> Path:
    server_block = (ROOT / "docs" / "nginx" / "glmweb.conf").read_text()
    for placeholder, value in {
        "{{ servers }}": " ".join(f"server 127.0.0.1:{port};" for port in ports),
        "{{ listen }}": f"127.0.0.1:{listen}",
        "{{ server_name }}": "127.0.0.1",
        "{{ static_root }}": static_root,
    }.items():
        server_block = server_block.replace(placeholder, value)
    (folder / "glmweb.conf").write_text(server_block)
    main = folder / "nginx.conf"
    main.write_text(
        f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/glmweb.conf;
}}
"""
    )
    return main


@pytest.fixture(scope="module")
def behind_nginx(fake: FakeUpstream) -> Iterator[str]:
    if not hosted():
        pytest.skip("needs DATABASE_URL and REDIS_URL (several workers)")
    if not os.path.exists(NGINX):
        pytest.skip("needs Debian's nginx (make test installs it as root)")
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)  # nginx's workers drop root and must read the static files
        static_root = f"{folder}/static"
        production = {
            "DEBUG": "false",
            "SECRET_KEY": "test-only-" + "k" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
            "STATIC_ROOT": static_root,
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "USE_X_FORWARDED_HOST": "true",
        }
        with glmweb_app(fake.base_url, **production) as app:
            app.manage("collectstatic", "--noinput")
            ports = [free_port(), free_port()]
            for name, port in zip(("w1", "w2"), ports, strict=True):
                app.start_worker(name, port)
            listen = free_port()
            config = render_nginx_config(Path(folder), listen, ports, static_root)
            nginx = subprocess.Popen([NGINX, "-c", str(config)])
            try:
                url = f"http://127.0.0.1:{listen}"
                wait_for_http(f"{url}/healthz")
                yield url
            finally:
                nginx.terminate()
                nginx.wait(10)


def test_chat_through_nginx_in_front_of_two_workers(browser, behind_nginx, fake) -> None:
    fake.scenario = Scenario(tokens=60, reasoning_tokens=5, delay=0.03)
    expected = "".join(content_tokens(fake.scenario)).strip()
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors

    try:
        sign_up(page, behind_nginx, "hana")
    finally:
        print("console:", errors)
    box = page.get_by_role("textbox", name="Message")
    box.fill("Through the proxy")
    box.press("Enter")
    lengths = reply_lengths_while_streaming(page)

    assert len({n for n in lengths if 0 < n < len(expected)}) >= 3
    expect(last_reply(page)).to_have_text(expected, use_inner_text=True)
    page.wait_for_url("**/c/*/")
    for _ in range(3):  # each reload may land on the other worker
        page.reload()
        wait_until_ready(page)
        expect(last_reply(page)).to_have_text(expected, use_inner_text=True)
    assert errors == []
    context.close()
