"""The supervisor view's effort charts in a real browser (Debian's chromium), against a real
server and Redis holding the known week of tests/kpi_week.py: each chart shows that week's
numbers, read from the data attributes the page puts on its own SVG, and a 400 px sidebar
screenshot is saved as tests/artifacts/supervisor-kpis.png.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.browser import artifact, browser
from tests.kpi_week import Week, week
from tests.scenario import ok

__all__ = ["browser", "week"]  # the fixtures, imported so pytest finds them here

Number = float | None


def number(raw: str | None) -> Number:
    return None if raw in (None, "") else float(raw)


async def chart(page: Page, kpi: str, span: str) -> tuple[list[Number], list[Number]]:
    """A chart's totals (one per stacked field) and its bars' values, oldest bucket first (the
    first field's bars, for a stacked chart)."""
    svg = page.locator(f'#kpis svg[data-kpi="{kpi}"][data-range="{span}"]')
    await expect(svg).to_have_count(1)
    totals = [number(t) for t in (await svg.get_attribute("data-total") or "").split(" ")]
    first = kpi.split(" ")[0]
    bars = await svg.locator(f'rect[data-field="{first}"]').evaluate_all(
        "bars => bars.map(b => [b.dataset.start, b.dataset.value])")
    return totals, [number(v) for _, v in sorted(bars)]


async def supervisor_view(browser: Browser, week: Week, width: int) -> Page:
    minted = await ok(week.client, "POST", "/v1/desk/tokens", week.keys("supervisor"),
                      {"agent_id": "sup-1"})
    assert "/desk/supervisor#token=" in minted["panel_url"]
    page = await browser.new_page(viewport={"width": width, "height": 900})
    await page.goto(minted["panel_url"])
    await expect(page.locator('#kpis[data-loaded="true"]')).to_have_count(1)
    return page


async def test_the_supervisor_view_charts_the_weeks_effort_figures(
        browser: Browser, week: Week) -> None:
    page = await supervisor_view(browser, week, width=400)
    hour = [None] * 10
    assert await chart(page, "requested", "7d") == ([8], [2, 1, 1, 1, 0, 0, 3])
    assert await chart(page, "requested", "24h") == ([3], [0] * 10 + [2] + [0] * 12 + [1])
    assert await chart(page, "expired", "7d") == ([1], [0, 0, 0, 1, 0, 0, 0])
    assert await chart(page, "handed_back", "7d") == ([2], [1, 0, 0, 0, 0, 0, 1])
    assert await chart(page, "time_to_accept_p50_seconds", "7d") == (
        [120], [240, 30, 120, None, None, None, 100])
    assert await chart(page, "time_to_accept_p90_seconds", "24h") == (
        [900], hour + [900] + [None] * 13)
    assert await chart(page, "verification_carried", "7d") == (
        [0.2], [1, 0, 0, None, None, None, 0])
    assert await chart(page, "reasks_per_100_accepted", "7d") == (
        [100], [100, 0, 100, None, None, None, 150])
    assert await chart(page, "reask_warnings_heeded reask_warnings_sent_anyway", "7d") == (
        [2, 2], [0, 1, 0, 0, 0, 0, 1])
    assert await chart(page, "channel_switches_per_handoff", "7d") == (
        [0.6], [1, 0, 2, None, None, None, 0])
    assert await chart(page, "repeat_contacts", "7d") == ([1], [0, 0, 1, 0, 0, 0, 0])
    assert await chart(page, "alerts_raised", "24h") == ([1], [0] * 10 + [1] + [0] * 13)
    assert await chart(page, "time_to_acknowledge_p50_seconds", "7d") == (
        [120], [None] * 6 + [120])
    # Every chart fits the sidebar: none is wider than the page.
    widths = await page.locator("#kpis svg").evaluate_all(
        "charts => charts.map(c => c.getBoundingClientRect().right)")
    assert len(widths) == 28 and max(widths) <= 400
    label = await page.locator('#kpis svg[data-kpi="time_to_accept_p50_seconds"]'
                               '[data-range="7d"]').get_attribute("aria-label")
    assert label == "Time to accept, median, Last 7 days: 2 min"
    stacked = await page.locator('#kpis svg[data-range="24h"][data-kpi^="reask_warnings"]'
                                 ).get_attribute("aria-label")
    assert stacked == "Re-ask warnings, Last 24 hours: 1 heeded, 1 sent anyway"
    await page.locator("#kpis").screenshot(path=artifact("supervisor-kpis.png"))


async def test_a_supervisor_of_another_tenant_sees_only_its_own_figures(
        browser: Browser, week: Week) -> None:
    minted = await ok(week.client, "POST", "/v1/desk/tokens", week.keys("supervisor", "globex"),
                      {"agent_id": "sup-9"})
    page: Any = await browser.new_page(viewport={"width": 400, "height": 900})
    await page.goto(minted["panel_url"])
    await expect(page.locator('#kpis[data-loaded="true"]')).to_have_count(1)
    assert await chart(page, "requested", "7d") == ([1], [0, 0, 0, 0, 0, 0, 1])
    assert await chart(page, "accepted", "7d") == ([0], [0] * 7)
