"""Fixtures of the browser tests: a real server with the small demo region (tests/web/live_server.py) and
headless Debian chromium driven by Playwright (its own browser downloads are never used).

Without chromium (or the playwright package) the browser tests are skipped, unless CI is set: then they fail
and say what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.live_server import CHROMIUM_ARGS, Server, browser_missing, chromium_path, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("web")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright, closed after the module."""
    executable = chromium_path()
    if executable is None:
        browser_missing("chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
