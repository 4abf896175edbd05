"""A headless chromium for tests that look at a page as a person would.

Debian's chromium (`/usr/bin/chromium`, installed by `.ci/run`) driven by Playwright; no browser
is ever downloaded. Without chromium the tests that need it are skipped on a workstation and
fail in CI (`CI` set), where a missing browser is a broken setup, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("HANDOFF_TEST_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A launched headless chromium (a Playwright `Browser`), closed after the test."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, headless=True,
                                                    args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
