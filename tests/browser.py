"""A real headless browser for tests that need one: Debian's chromium, never a downloaded build.

Outside CI a machine without it skips these tests with the reason; in CI (`CI` set) a missing
browser fails them, since `.ci/run` installs it first.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path(os.environ.get("HANDOFF_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - one stat, before any loop work
        if os.environ.get("CI"):
            pytest.fail(f"no browser at {CHROMIUM}: CI must install it (apt-get install chromium)")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium to run these)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    headless=True, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def artifact(name: str) -> Path:
    """Where a test saves what it saw (tests/artifacts/, kept by CI, ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
