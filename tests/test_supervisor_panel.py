"""The supervisor view in a real browser, against a real server and Redis: risk alerts arrive
live, acknowledging one on one supervisor's screen clears it on another's, and the customer's
brief reads in the page. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from tests.browser import artifact, browser
from tests.conftest import Keys
from tests.scenario import ok

__all__ = ["browser"]  # the fixture, imported so pytest finds it here
Client = TestClient[Any, Any]
TS = "2026-11-23T10:02:00Z"


async def supervisor_link(client: Client, keys: Keys, name: str,
                          supervisor: dict[str, str] | None = None) -> str:
    minted = await ok(client, "POST", "/v1/desk/tokens", supervisor or keys("supervisor"),
                      {"agent_id": name})
    url: str = minted["panel_url"]
    return url


async def open_view(browser: Browser, url: str, width: int = 1280) -> Page:
    """The supervisor view, once its alert stream is live."""
    page = await browser.new_page(viewport={"width": width, "height": 860})
    await page.goto(url)
    await expect(page.locator("#alerts-status")).to_have_text("Live: new alerts appear here.")
    return page


async def customer_says(client: Client, keys: Keys, turn_id: str, text: str,
                        visitor: str = "visitor-42") -> str:
    posted = await ok(client, "POST", f"/v1/conversations/web-{visitor}/turns", keys("bot"), {
        "customer": {"identities": [{"kind": "chat", "value": visitor}]}, "channel": "chat",
        "source": "acme-bot", "turns": [
            {"id": turn_id, "role": "customer", "text": text, "ts": TS}]})
    customer: str = posted["customer_id"]
    return customer


async def the_alert(client: Client, keys: Keys) -> str:
    page = await ok(client, "GET", "/v1/alerts", keys("supervisor"))
    (alert,) = page["items"]
    alert_id: str = alert["id"]
    return alert_id


async def test_an_alert_appears_within_two_seconds_of_the_customers_turn(
        browser: Browser, client: Client, keys: Keys) -> None:
    page = await open_view(browser, await supervisor_link(client, keys, "sup-dana"))
    await expect(page.locator("#alert-list")).to_contain_text("No open alerts.")
    await page.evaluate("window.notReloaded = true")

    customer = await customer_says(client, keys, "t1", "Fix this today or I file a lawsuit")
    alert_id = await the_alert(client, keys)
    item = page.locator(f'[data-alert="{alert_id}"]')
    await expect(item).to_contain_text("Fix this today or I file a lawsuit", timeout=2000)
    for shown in ("high", "legal", "chat", customer):
        await expect(item).to_contain_text(shown)
    assert await page.evaluate("window.notReloaded") is True
    await page.screenshot(path=artifact("supervisor-alert.png"))

    # The brief, read in the page, with the turn that raised the alert marked.
    await item.get_by_role("link", name=f"Open the brief of customer {customer}").click()
    await expect(page.locator("#brief")).to_be_visible()
    await expect(page.locator("#brief-title")).to_have_text(f"Customer {customer}")
    await expect(page.locator('[data-turn="t1"].flagged-here')).to_contain_text("lawsuit")
    await expect(page.locator("#flags")).to_contain_text("legal: lawsuit")
    await expect(page.locator('section#kpis[aria-label="Effort KPIs"]')).to_be_attached()
    await page.screenshot(path=artifact("supervisor-brief.png"), full_page=True)


async def test_acknowledging_on_one_screen_clears_the_alert_on_another(
        browser: Browser, client: Client, keys: Keys) -> None:
    made = await ok(client, "POST", "/v1/admin/keys", keys("admin"),
                    {"role": "supervisor", "name": "night shift"}, status=201)
    night_key = {"Authorization": f"Bearer {made['key']}"}
    day = await open_view(browser, await supervisor_link(client, keys, "sup-dana"))
    night = await open_view(browser, await supervisor_link(client, keys, "sup-omar", night_key),
                            width=400)
    await customer_says(client, keys, "t1", "I am fed up, this is the third time")
    alert_id = await the_alert(client, keys)
    for page in (day, night):
        await expect(page.locator(f'[data-alert="{alert_id}"]')).to_be_visible(timeout=2000)
    await night.screenshot(path=artifact("supervisor-sidebar.png"), full_page=True)
    widths = await night.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1] <= 400, f"horizontal scroll at 400 px: {widths}"

    # By keyboard alone, as a supervisor without a mouse would.
    for _ in range(40):
        await day.keyboard.press("Tab")
        if await day.evaluate("document.activeElement.dataset.ack") == alert_id:
            break
    else:
        raise AssertionError("the Acknowledge button cannot be reached with the keyboard")
    await day.keyboard.press("Enter")
    await expect(day.locator("#alerts-status")).to_contain_text("Acknowledged by sup-dana")
    await expect(night.locator(f'[data-alert="{alert_id}"]')).to_have_count(0, timeout=2000)
    await expect(night.locator("#alerts-status")).to_contain_text("sup-dana acknowledged")
    await expect(night.locator("#alert-list")).to_contain_text("No open alerts.")
    await night.screenshot(path=artifact("supervisor-cleared.png"))
    listed = await ok(client, "GET", "/v1/alerts?status=acknowledged", night_key)
    assert [(a["id"], a["acknowledged_by"]) for a in listed["items"]] == [(alert_id, "sup-dana")]


async def test_an_agents_panel_link_does_not_open_the_supervisor_view(
        browser: Browser, client: Client, keys: Keys) -> None:
    minted = await ok(client, "POST", "/v1/desk/tokens", keys("agent"), {"agent_id": "agent-7"})
    assert "/desk/#token=" in minted["panel_url"]
    page = await browser.new_page()
    await page.goto(minted["panel_url"].replace("/desk/#", "/desk/supervisor#"))
    await expect(page.locator("#problem-title")).to_have_text("This view is for supervisors")
    await expect(page.locator("#problem-detail")).to_contain_text("an agent key may not use")
    await expect(page.locator("#app")).to_be_hidden()
