"""Single sign-on test building blocks: a real OpenID Connect provider (the npm
package oidc-provider, tests/oidc_provider/) on loopback, glmweb workers that
sign in through it, and a browser that clicks through its pages.

The provider's accounts live in a JSON file it reads again at every sign-in,
so a test changes someone's claims (e-mail, groups) between two sign-ins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.servers import free_port, wait_for_http
from tests.servers import App, glmweb_app

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
CLIENT_ID = "glmweb-test"
CLIENT_SECRET = "glmweb-test-secret-not-a-real-one"
SSO_NAME = "Test IdP"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="needs node and npm to run the OpenID Connect provider (tests/oidc_provider)",
)


def callback_uri(port: int) -> str:
    return f"http://127.0.0.1:{port}/accounts/oidc/sso/login/callback/"


@pytest.fixture(scope="session")
def oidc_packages() -> Path:
    """tests/oidc_provider's node_modules, installed from its lock file if missing."""
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if npm.returncode != 0:
            pytest.fail(f"npm ci in tests/oidc_provider failed:\n{npm.stderr[-3000:]}")
    return PROVIDER_DIR


@dataclass
class Provider:
    """The running provider: its issuer URL and the accounts it signs in."""

    issuer: str
    accounts_file: Path

    def set_account(self, login: str, **claims: Any) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[login] = {"email_verified": True, **claims}
        self.accounts_file.write_text(json.dumps(accounts))


@contextmanager
def oidc_provider(packages: Path, redirect_ports: list[int]) -> Iterator[Provider]:
    """The provider on a free loopback port, with glmweb's client registered for
    the callback on each of ``redirect_ports``."""
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        accounts = Path(folder) / "accounts.json"
        accounts.write_text("{}")
        log = open(Path(folder) / "provider.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            ["node", "provider.mjs"],
            cwd=packages,
            env={
                **os.environ,
                "OIDC_PORT": str(port),
                "OIDC_CLIENT_ID": CLIENT_ID,
                "OIDC_CLIENT_SECRET": CLIENT_SECRET,
                "OIDC_REDIRECT_URIS": ",".join(callback_uri(p) for p in redirect_ports),
                "OIDC_ACCOUNTS": str(accounts),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        issuer = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{issuer}/.well-known/openid-configuration")
            yield Provider(issuer=issuer, accounts_file=accounts)
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()
            # Shown by pytest only when a test failed.
            print("provider log:", (Path(folder) / "provider.log").read_text()[-3000:])


def sso_env(provider: Provider, **extra: str) -> dict[str, str]:
    """The environment of a glmweb that signs in through ``provider``."""
    return {
        "GLMWEB_OIDC_ISSUER": provider.issuer,
        "GLMWEB_OIDC_CLIENT_ID": CLIENT_ID,
        "GLMWEB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "GLMWEB_OIDC_NAME": SSO_NAME,
        "GLMWEB_OIDC_GROUPS_CLAIM": "groups",
        **extra,
    }


@contextmanager
def sso_site(upstream_url: str, provider: Provider, port: int, **env: str) -> Iterator[App]:
    """glmweb on ``port`` (one the provider knows), signing in through ``provider``."""
    with glmweb_app(upstream_url, **sso_env(provider, **env)) as app:
        app.start_worker("sso", port)
        yield app


def site_url(app: App) -> str:
    return f"http://127.0.0.1:{app.ports['sso']}"


def sign_in_at_provider(page: Any, base_url: str, login: str) -> None:
    """From glmweb's login page through the provider's sign-in and consent pages."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_role("button", name=f"Sign in with {SSO_NAME}").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password: devInteractions")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base_url}/**")


def user_facts(app: App, username_or_uid: str) -> dict[str, Any]:
    """What the database says of the account the provider's subject is linked to."""
    script = (
        "import json; from allauth.socialaccount.models import SocialAccount; "
        f"a = SocialAccount.objects.filter(uid={username_or_uid!r}).first(); "
        "u = a.user if a else None; "
        "print(json.dumps(None if u is None else {'id': u.pk, 'username': u.username, "
        "'email': u.email, 'active': u.is_active, "
        "'groups': sorted(u.groups.values_list('name', flat=True)), "
        "'pending': hasattr(u, 'signup_approval') and u.signup_approval.approved_at is None}))"
    )
    return json.loads(app.manage("shell", "-c", script).strip().splitlines()[-1])


def count_users(app: App) -> int:
    script = (
        "from django.contrib.auth import get_user_model; print(get_user_model().objects.count())"
    )
    return int(app.manage("shell", "-c", script).strip().splitlines()[-1])
