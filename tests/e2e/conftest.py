"""Browser fixtures: the test app on a real socket, Debian's Chromium driven by Playwright.

The app runs with CSRF protection on, as in production, so every form a test submits must
carry the token the page rendered. The emulator's webhooks are delivered to the same server.

Without Chromium (or the playwright package) the tests are skipped with the reason; with
`CI=true` they fail instead: CI must not pass by skipping what it cannot run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 15_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests need {reason}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (the system's; Playwright downloads nothing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package (make install)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"WTF_CSRF_ENABLED": True}


@pytest.fixture
def site(webhooks: Any, live_server: str) -> str:
    """The live app's base URL; the emulator's webhooks reach it."""
    return live_server


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's folder for screenshots (tests/e2e/artifacts/, ignored by git)."""
    folder = ARTIFACTS / re.sub(r"\W+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


class Pages:
    """Opens browser pages on the live site, each in its own context (its own cookies)."""

    def __init__(self, browser: Any, site: str, artifacts: Path):
        self.browser, self.site, self.artifacts = browser, site, artifacts
        self._contexts: list[Any] = []
        self._shots = 0
        self.csp_violations: list[str] = []

    def new(self) -> Any:
        context = self.browser.new_context(
            base_url=self.site, viewport={"width": 1200, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        self._contexts.append(context)
        page = context.new_page()
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.csp_violations.append(f"{message.location.get('url')}: {message.text}")

    def logged_in(self, email: str, password: str = PASSWORD) -> Any:
        """A page logged in through the login form, as a person would."""
        page = self.new()
        page.goto("/")
        page.get_by_role("link", name="Log in").click()
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("Welcome back").wait_for()
        return page

    def shot(self, page: Any, name: str) -> Path:
        self._shots += 1
        path = self.artifacts / f"{self._shots:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def pages(browser: Any, site: str, artifacts: Path) -> Iterator[Pages]:
    opened = Pages(browser, site, artifacts)
    yield opened
    opened.close()
    # Every page a journey opened ran under the app's Content-Security-Policy.
    assert not opened.csp_violations, opened.csp_violations


@pytest.fixture
def login_page(pages: Pages) -> Callable[..., Any]:
    """`login_page(email)` → a browser page logged in through the login form."""
    return pages.logged_in
