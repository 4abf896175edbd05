"""Panel tokens: minted by an agent key, good on the panel's routes only, for one agent, for a
while, and never longer than the key that minted them."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.services import apikeys, desktokens
from tests.conftest import AppFactory, Keys
from tests.scenario import (
    CALL,
    FACTS_BODY,
    RESOLVE_BODY,
    World,
    assert_problem,
    build_world,
    call,
    ok,
    phone_customer,
    turn,
)

Client = TestClient[Any, Any]


async def mint(client: Client, keys: Keys, agent: str = "agent-7", **more: Any) -> str:
    minted = await ok(client, "POST", "/v1/desk/tokens", keys("agent"),
                      {"agent_id": agent, **more})
    token: str = minted["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_minted_token_opens_the_panel_with_the_token_in_the_fragment_only(
        client: Client, keys: Keys) -> None:
    minted = await ok(client, "POST", "/v1/desk/tokens", keys("agent"),
                      {"agent_id": "agent-7", "minutes": 30})
    url = urlsplit(minted["panel_url"])
    assert (url.path, url.query) == ("/desk/", "")
    assert parse_qs(url.fragment)["token"] == [minted["token"]]
    assert (minted["tenant"], minted["agent_id"]) == ("acme", "agent-7")
    page = await client.get(url.path)
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert "frame-ancestors *" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "desk.js" in await page.text()


async def test_the_panel_token_reads_the_queue_the_context_and_the_transcript_as_its_agent(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    token = bearer(await mint(client, keys))
    queue = await ok(client, "GET", "/v1/handoffs", token)
    assert world.handoff_id in [h["id"] for h in queue["items"]]
    await ok(client, "GET", f"/v1/customers/{world.customer_id}/context", token)
    await ok(client, "GET", f"/v1/customers/{world.customer_id}/turns", token)
    audit = await ok(client, "GET", "/v1/admin/audit", keys("admin"))
    assert {(e["what"], e["agent_id"]) for e in audit["items"]} == {
        ("context", "agent-7"), ("turns", "agent-7")}


async def test_event_streams_take_the_token_as_a_query_parameter_for_eventsource(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    token = await mint(client, keys)
    async with client.get(f"/v1/customers/{world.customer_id}/events",
                          params={"access_token": token}) as stream:
        assert stream.status == 200
        await ok(client, "POST", f"/v1/conversations/{CALL}/turns", keys("ivr"), {
            "customer": phone_customer(), "turns": [turn("c7", "Hello?")]})
        seen = b""
        async with asyncio.timeout(5):
            while b"Hello?" not in seen:
                seen += await stream.content.readany()


async def test_an_api_key_is_never_taken_from_a_url(client: Client, keys: Keys) -> None:
    secret = keys("agent")["Authorization"].split()[1]
    answer = await call(client, "GET", f"/v1/handoffs/events?access_token={secret}")
    assert_problem(answer, 401)


async def test_the_token_accepts_and_replies_only_as_its_own_agent(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    token = bearer(await mint(client, keys, "agent-7"))
    path = f"/v1/handoffs/{world.handoff_id}/accept"
    other = await call(client, "POST", path, headers=token, json_body={"agent_id": "agent-9"})
    assert "agent-7" in assert_problem(other, 403)["detail"]
    accepted = await ok(client, "POST", path, token, {"agent_id": "agent-7"})
    assert accepted["handoff"]["agent_id"] == "agent-7"
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", token,
             {"turns": [turn("a1", "I'm looking at it now", "agent")]})
    as_customer = await call(client, "POST", f"/v1/conversations/{CALL}/turns", headers=token,
                             json_body={"turns": [turn("x1", "I agree to pay", "customer")]})
    assert_problem(as_customer, 403)


async def test_the_token_ends_only_its_own_agents_handoff_by_resolving_or_handing_back(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    mine, theirs = bearer(await mint(client, keys, "agent-7")), bearer(
        await mint(client, keys, "agent-9"))
    await ok(client, "POST", f"/v1/handoffs/{world.handoff_id}/accept", mine,
             {"agent_id": "agent-7"})
    for path, body in ((f"/v1/handoffs/{world.handoff_id}/resolve", RESOLVE_BODY),
                       (f"/v1/handoffs/{world.handoff_id}/hand-back", {"note": "done"})):
        refused = await call(client, "POST", path, headers=theirs, json_body=body)
        assert "agent-7" in assert_problem(refused, 409)["detail"]
    back = await ok(client, "POST", f"/v1/handoffs/{world.handoff_id}/hand-back", mine,
                    {"note": "Refund re-issued", "agent_id": "agent-9"})
    assert (back["status"], back["agent_id"]) == ("handed_back", "agent-7")


ELSEWHERE = [("PUT", "/v1/customers/{customer}/facts", FACTS_BODY),
             ("GET", "/v1/admin/keys", None),
             ("POST", "/v1/desk/tokens", {"agent_id": "agent-7"}),
             ("GET", "/v1/admin/audit", None)]


@pytest.mark.parametrize(("method", "path", "body"), ELSEWHERE, ids=[p for _, p, _ in ELSEWHERE])
async def test_the_token_is_refused_everywhere_but_the_panels_routes(
        method: str, path: str, body: Any, client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    token = bearer(await mint(client, keys))
    answer = await call(client, method, path.format(customer=world.customer_id,
                                                    handoff=world.handoff_id),
                        headers=token, json_body=body)
    assert "panel" in assert_problem(answer, 403)["detail"]


async def test_a_token_outlives_neither_its_expiry_nor_tampering(
        client: Client, keys: Keys) -> None:
    deps = client.app[DEPS]
    principal = await apikeys.authenticate(deps, keys("agent")["Authorization"])
    stale = desktokens.mint(deps, principal, "agent-7", expires_ms=deps.now_ms() - 1000)
    expired = assert_problem(await call(client, "GET", "/v1/handoffs", headers=bearer(stale)),
                             401)
    assert expired["reason"] == "expired"
    good = await mint(client, keys)
    payload, signature = good[3:].split(".")
    forged_for = desktokens.mint(deps, principal, "agent-8", expires_ms=deps.now_ms() + 60_000)
    for forged in (good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
                   f"dt_{forged_for[3:].split('.')[0]}.{signature}", "dt_", "dt_x.y"):
        problem = assert_problem(await call(client, "GET", "/v1/handoffs",
                                            headers=bearer(forged)), 401)
        assert problem["reason"] == "invalid"


async def test_revoking_the_minting_key_signs_every_panel_out_on_every_process(
        make_client: AppFactory, keys: Keys, client: Client) -> None:
    other = await make_client()
    token = bearer(await mint(client, keys))
    await ok(other, "GET", "/v1/handoffs", token)  # any process checks any token
    key_id = (await ok(client, "GET", "/v1/admin/keys", keys("admin")))["items"]
    agent_key = next(k for k in key_id if k["role"] == "agent")
    await ok(client, "DELETE", f"/v1/admin/keys/{agent_key['id']}", keys("admin"))
    for process in (client, other):
        for _ in range(50):
            answer = await call(process, "GET", "/v1/handoffs", headers=token)
            if answer.status == 401:
                break
            await asyncio.sleep(0.05)
        assert assert_problem(answer, 401)["reason"] == "revoked"


async def test_a_token_minted_before_a_restart_still_works_after_it(
        make_client: AppFactory, keys: Keys, client: Client) -> None:
    token = bearer(await mint(client, keys))
    await client.close()
    restarted = await make_client()
    await ok(restarted, "GET", "/v1/handoffs", token)


async def test_the_accept_response_carries_a_panel_url_signed_in_for_the_accepting_agent(
        client: Client, keys: Keys) -> None:
    world: World = await build_world(client, keys)
    accepted = await ok(client, "POST", f"/v1/handoffs/{world.handoff_id}/accept",
                        keys("agent"), {"agent_id": "agent-7"})
    fragment = parse_qs(urlsplit(accepted["panel_url"]).fragment)
    assert fragment["handoff"] == [world.handoff_id]
    token = bearer(fragment["token"][0])
    await ok(client, "GET", f"/v1/customers/{world.customer_id}/context", token)
    again = await call(client, "POST", f"/v1/handoffs/{world.handoff_id}/accept", headers=token,
                       json_body={"agent_id": "agent-8"})
    assert_problem(again, 403)


async def test_the_panels_files_are_served_and_nothing_else_is(client: Client) -> None:
    for name, kind in (("desk.js", "text/javascript"), ("desk.css", "text/css")):
        answer = await call(client, "GET", f"/desk/{name}")
        assert answer.status == 200 and answer.content_type == kind
    for missing in ("/desk/secrets.txt", "/desk/..%2Fsettings.py"):
        assert_problem(await call(client, "GET", missing), 404)
    async with client.get("/desk", allow_redirects=False) as redirect:
        assert (redirect.status, redirect.headers["Location"]) == (308, "/desk/")
