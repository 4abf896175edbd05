"""The agent panel in a real browser, against a real server and Redis: the product's own story
seen from the agent's side. Each state is saved as a screenshot under tests/artifacts/.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from handoff.api.state import DEPS
from handoff.services import apikeys, desktokens
from tests.browser import artifact, browser
from tests.conftest import Keys
from tests.scenario import ACCOUNT, CALL, World, build_world, ok, phone_customer, turn

__all__ = ["browser"]  # the fixture, imported so pytest finds it here
Client = TestClient[Any, Any]
SUMMARY = "Charged twice for order A-1001"


async def panel_link(client: Client, keys: Keys, agent: str = "agent-7") -> str:
    minted = await ok(client, "POST", "/v1/desk/tokens", keys("agent"), {"agent_id": agent})
    url: str = minted["panel_url"]
    return url


async def open_panel(browser: Browser, url: str, width: int = 1280, height: int = 800,
                     cut_live_queue: bool = False) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
    if cut_live_queue:
        # Cut before the page loads: a stream that connected first would still see the accept.
        await page.route("**/v1/handoffs/events*", lambda route: route.abort())
    await page.goto(url)
    return page


async def accept_by_keyboard(page: Page, handoff_id: str) -> None:
    """Tab to the hand-off's Accept button, as an agent without a mouse would, and press Enter."""
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.dataset.handoff") == handoff_id:
            break
    else:
        raise AssertionError("the Accept button cannot be reached with the keyboard")
    await page.keyboard.press("Enter")
    await expect(page.locator("#brief")).to_be_visible()


async def accepted_panel(browser: Browser, client: Client, keys: Keys,
                         width: int = 1280) -> tuple[Page, World]:
    world = await build_world(client, keys)
    page = await open_panel(browser, await panel_link(client, keys), width=width)
    await expect(page.locator(f'[data-handoff-item="{world.handoff_id}"]')).to_be_visible()
    await accept_by_keyboard(page, world.handoff_id)
    return page, world


async def test_the_seed_scenarios_handoff_appears_in_the_queue(
        browser: Browser, client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    page = await open_panel(browser, await panel_link(client, keys))
    item = page.locator(f'[data-handoff-item="{world.handoff_id}"]')
    await expect(item).to_contain_text(SUMMARY)
    await expect(item).to_contain_text("P1")
    await expect(item).to_contain_text("billing")
    await expect(item).to_contain_text("customer request")
    await expect(page.locator("#who")).to_contain_text("agent-7")
    await page.screenshot(path=artifact("desk-queue.png"))


async def test_a_handoff_requested_while_the_panel_is_open_appears_without_reload(
        browser: Browser, client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    page = await open_panel(browser, await panel_link(client, keys))
    await expect(page.locator(f'[data-handoff-item="{world.handoff_id}"]')).to_be_visible()
    await page.evaluate("window.notReloaded = true")
    later = await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": phone_customer("+15550106666"), "conversation_id": "CA-late",
        "channel": "voice", "reason": "risk", "priority": 2, "queue": "fraud",
        "summary": "Card stolen last night"}, status=201)
    await expect(page.locator(f'[data-handoff-item="{later["id"]}"]')).to_contain_text(
        "Card stolen last night")
    assert await page.evaluate("window.notReloaded") is True


async def test_accepting_shows_the_verified_badge_the_order_number_and_the_do_not_ask_list(
        browser: Browser, client: Client, keys: Keys) -> None:
    page, _ = await accepted_panel(browser, client, keys)
    badge = page.locator("[data-verified]")
    await expect(badge).to_contain_text(f"Verified: account {ACCOUNT}")
    await expect(badge).to_contain_text("PIN via IVR")
    await expect(badge).to_contain_text("ago, valid")
    await expect(page.locator('[data-fact="order_number"]')).to_contain_text("A-1001")
    for item in ("account", "order number", "phone", "email"):
        await expect(page.locator("#dna")).to_contain_text(item)
    await expect(page.locator("#journey")).to_contain_text("chat")
    await expect(page.locator("#journey")).to_contain_text("IVR")
    await expect(page.locator("#journey li.you")).to_have_text("you")
    await expect(page.locator("#summary")).to_have_text(SUMMARY)
    await expect(page.locator('[data-turn="t1"]')).to_contain_text("I was charged twice")
    await page.screenshot(path=artifact("desk-brief.png"), full_page=True)


async def test_a_turn_posted_through_the_api_appears_within_two_seconds_without_reload(
        browser: Browser, client: Client, keys: Keys) -> None:
    page, _ = await accepted_panel(browser, client, keys)
    await page.evaluate("window.notReloaded = true")
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", keys("ivr"), {
        "customer": phone_customer(), "turns": [turn("c9", "Are you still there?")]})
    await expect(page.locator('[data-turn="c9"]')).to_contain_text("Are you still there?",
                                                                   timeout=2000)
    assert await page.evaluate("window.notReloaded") is True
    await page.screenshot(path=artifact("desk-live-turn.png"))


async def test_a_risk_flag_is_highlighted_at_the_turn_that_raised_it(
        browser: Browser, client: Client, keys: Keys) -> None:
    page, _ = await accepted_panel(browser, client, keys)
    # A first live turn shows the stream is open, so the flag below must arrive live too.
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", keys("ivr"), {
        "customer": phone_customer(), "turns": [turn("c7", "Still waiting on this")]})
    await expect(page.locator('[data-turn="c7"]')).to_be_visible()
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", keys("ivr"), {
        "customer": phone_customer(), "turns": [turn("c8", "I will call my lawyer")]})
    flagged = page.locator('[data-turn="c8"].flagged')
    await expect(flagged).to_contain_text("legal: lawyer")


async def test_asking_for_the_account_number_warns_before_sending_and_shows_the_known_value(
        browser: Browser, client: Client, keys: Keys) -> None:
    page, world = await accepted_panel(browser, client, keys)
    reply = page.locator("#reply-text")
    await reply.fill("Let me confirm your account ending 2345, one moment.")
    await page.wait_for_timeout(600)  # past the check's debounce: still no warning
    await expect(page.locator("#reask")).to_be_hidden()

    await reply.fill("")
    await reply.press_sequentially("can I have your account number?")
    warning = page.locator("#reask")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text(ACCOUNT)
    await expect(page.locator("#send")).to_have_text("Send anyway")
    await page.screenshot(path=artifact("desk-reask.png"), full_page=True)

    await page.locator("#send").click()  # the first press only points at the warning
    await expect(page.locator("#reply-status")).to_contain_text("Send anyway")
    await page.locator("#send").click()
    await expect(page.locator("#reply-status")).to_have_text("Sent.")
    brief = await ok(client, "GET", f"/v1/customers/{world.customer_id}/context", keys("agent"))
    assert [(f["kind"], f["term"]) for f in brief["flags"] if f["kind"] == "reask"] == [
        ("reask", "account")]
    agent_turns = [t for t in brief["turns"] if t["role"] == "agent"]
    assert [(t["text"], t["conversation_id"]) for t in agent_turns] == [
        ("can I have your account number?", CALL)]


async def test_a_second_agent_accepting_the_same_handoff_is_told_who_took_it(
        browser: Browser, client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    first = await open_panel(browser, await panel_link(client, keys, "agent-7"))
    # The second panel's live queue lags behind (its stream is cut), as on a slow network.
    second = await open_panel(browser, await panel_link(client, keys, "agent-8"),
                              cut_live_queue=True)
    for page in (first, second):
        await expect(page.locator(f'[data-handoff-item="{world.handoff_id}"]')).to_be_visible()
    await first.locator(f'button[data-handoff="{world.handoff_id}"]').click()
    await expect(first.locator("#brief")).to_be_visible()
    await second.locator(f'button[data-handoff="{world.handoff_id}"]').click()
    item = second.locator(f'[data-handoff-item="{world.handoff_id}"]')
    await expect(item).to_contain_text("Taken by agent-7")
    await expect(second.locator("#brief")).to_be_hidden()
    await second.screenshot(path=artifact("desk-taken.png"))


async def test_the_400px_sidebar_iframe_has_no_horizontal_scroll(
        browser: Browser, client: Client, keys: Keys, aiohttp_server: Any) -> None:
    world = await build_world(client, keys)
    accepted = await ok(client, "POST", f"/v1/handoffs/{world.handoff_id}/accept",
                        keys("agent"), {"agent_id": "agent-7"})
    desk = await desk_page_with_sidebar(aiohttp_server, accepted["panel_url"])
    host = await browser.new_page(viewport={"width": 1000, "height": 860})
    await host.goto(str(desk.make_url("/")))
    frame = host.frame_locator("iframe")
    await expect(frame.locator("[data-verified]")).to_contain_text("PIN via IVR")
    await expect(frame.locator('[data-fact="order_number"]')).to_contain_text("A-1001")
    panel = next(f for f in host.frames if f.url.startswith(accepted["panel_url"].split("#")[0]))
    widths = await panel.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"horizontal scroll in a 400 px frame: {widths}"
    assert widths[1] <= 400
    await host.screenshot(path=artifact("desk-sidebar.png"))


async def desk_page_with_sidebar(aiohttp_server: Any, panel_url: str) -> Any:
    """Another site (another origin) that embeds the panel the way a desk's sidebar does."""
    html = ('<!doctype html><title>Desk</title><p>A desk with the panel in its sidebar</p>'
            f'<iframe title="handoff" src="{panel_url}" width="400" height="800" '
            'style="border:1px solid #999"></iframe>')

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    return await aiohttp_server(app)


async def test_an_expired_token_gets_a_page_that_says_so(
        browser: Browser, client: Client, keys: Keys) -> None:
    deps = client.app[DEPS]
    principal = await apikeys.authenticate(deps, keys("agent")["Authorization"])
    stale = desktokens.mint(deps, principal, "agent-7", expires_ms=deps.now_ms() - 60_000)
    page = await open_panel(browser, str(client.make_url(f"/desk/#token={stale}")))
    await expect(page.locator("#problem")).to_be_visible()
    await expect(page.locator("#problem-title")).to_have_text("This panel link has expired")
    await expect(page.locator("#app")).to_be_hidden()
    await page.screenshot(path=artifact("desk-expired.png"))


async def test_a_forged_token_gets_a_page_that_says_so(
        browser: Browser, client: Client, keys: Keys) -> None:
    url = await panel_link(client, keys)
    forged = url[:-6] + ("AAAAAA" if not url.endswith("AAAAAA") else "BBBBBB")
    page = await open_panel(browser, forged)
    await expect(page.locator("#problem-title")).to_have_text("This panel link is not valid")
    await expect(page.locator("#problem-detail")).to_contain_text("not valid")
    await page.screenshot(path=artifact("desk-forged.png"))
