"""The agent panel ends its hand-off: "Hand back to the bot" with a note, or "Resolve". In a real
browser against a real server and Redis; screenshots under tests/artifacts/."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from tests.browser import artifact, browser
from tests.conftest import Keys
from tests.scenario import brief_of, ok
from tests.test_desk_panel import accepted_panel

__all__ = ["browser"]  # the fixture, imported so pytest finds it here
Client = TestClient[Any, Any]
NOTE = "Refund re-issued; it arrives within 3 working days."


async def test_the_agent_hands_the_customer_back_to_the_bot_with_a_note_by_keyboard(
        browser: Browser, client: Client, keys: Keys) -> None:
    page, world = await accepted_panel(browser, client, keys)
    await expect(page.locator("#close")).to_be_visible()
    # Handing back without a note is refused in the panel: the bot needs something to go on.
    await page.locator("#hand-back").click()
    await expect(page.locator("#close-status")).to_contain_text("Write a note for the bot")
    await expect(page.locator("#close-note")).to_be_focused()
    await page.keyboard.type(NOTE)
    await page.keyboard.press("Tab")
    await page.keyboard.press("Space")  # needs follow-up
    await page.keyboard.press("Tab")
    await expect(page.locator("#hand-back")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#close-status")).to_have_text(
        "Handed back to the bot with your note.")
    await expect(page.locator("#close")).to_be_hidden()
    await expect(page.locator("#contact")).to_contain_text(
        "agent-7 handed back to bot at")
    await expect(page.locator("#contact")).to_contain_text(f"(needs follow up): {NOTE}")
    await page.screenshot(path=artifact("desk-handed-back.png"))
    handoff = await ok(client, "GET", f"/v1/handoffs/{world.handoff_id}", keys("agent"))
    assert (handoff["status"], handoff["note"], handoff["outcome"]) == (
        "handed_back", NOTE, "needs_follow_up")
    contact = (await brief_of(client, keys, world.customer_id))["last_human_contact"]
    assert (contact["agent_id"], contact["note"]) == ("agent-7", NOTE)


async def test_the_agent_resolves_the_handoff_from_the_panel(
        browser: Browser, client: Client, keys: Keys) -> None:
    page, world = await accepted_panel(browser, client, keys, width=400)
    await page.locator("#close-note").fill("Refunded")
    await page.locator("#resolve").click()
    await expect(page.locator("#close-status")).to_have_text("Resolved.")
    await expect(page.locator("#close")).to_be_hidden()
    await page.screenshot(path=artifact("desk-resolved-sidebar.png"))
    handoff = await ok(client, "GET", f"/v1/handoffs/{world.handoff_id}", keys("agent"))
    assert (handoff["status"], handoff["note"], handoff["agent_id"]) == (
        "resolved", "Refunded", "agent-7")
