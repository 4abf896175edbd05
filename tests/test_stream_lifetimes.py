"""An event stream lives no longer than its credentials, takes no more than its tenant's and its
key's share of a process, and gives its Redis connection back when it ends.

Two processes are two applications on the same Redis, each behind its own real aiohttp server;
streams are read as an agent's panel reads them, line by line over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from handoff.api.events import BLOCK_MS
from handoff.api.state import DEPS, LIFETIMES
from handoff.app import create_app
from handoff.kernel.settings import Settings
from handoff.services import desktokens
from handoff.services.deps import Principal
from tests.conftest import CLUSTER, AppFactory, Keys
from tests.test_adapter_rasa import tracker
from tests.test_backpressure import until_a_stream_opens
from tests.test_events import Event, EventStream, following, say

Client = TestClient[Any, Any]
# A revoked key's stream must end long before its wait for news would have run out by itself.
AT_ONCE_S = 2.0
assert AT_ONCE_S < BLOCK_MS / 1000


async def key_id(client: Client, keys: Keys, role: str = "agent") -> str:
    listing = await (await client.get("/v1/admin/keys", headers=keys("admin"))).json()
    return str(next(k["id"] for k in listing["items"] if k["role"] == role))


async def new_agent_key(client: Client, keys: Keys, tenant: str = "acme") -> dict[str, str]:
    r = await client.post("/v1/admin/keys", headers=keys("admin", tenant),
                          json={"role": "agent", "name": "second desk"})
    assert r.status == 201, await r.text()
    made: dict[str, str] = await r.json()
    return made


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def last_words(events: EventStream, within: float) -> Event:
    """The stream's closing event, which must come within `within` seconds; nothing follows."""
    event = await asyncio.wait_for(events.next(), within)
    assert await asyncio.wait_for(events.response.content.read(), within) == b""
    return event


# -- a stream ends with its credentials ---------------------------------------------------------


async def test_revoking_a_key_ends_its_streams_and_its_panels_streams_on_every_process_at_once(
        client: Client, make_client: AppFactory, keys: Keys) -> None:
    other = await make_client()
    cus_id = await say(client, keys, "t1", "I was charged twice")
    doomed = await key_id(client, keys)
    r = await client.post("/v1/desk/tokens", headers=keys("agent"), json={"agent_id": "agent-7"})
    panel = (await r.json())["token"]
    survivor = await new_agent_key(client, keys)
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as here, \
            following(other, f"/v1/handoffs/events?access_token={panel}", {}) as panels, \
            following(other, f"/v1/customers/{cus_id}/events",
                      bearer(survivor["key"])) as unaffected:
        r = await client.delete(f"/v1/admin/keys/{doomed}", headers=keys("admin"))
        assert r.status == 200
        # Both streams are idle, waiting in Redis for news: they end anyway, now.
        for events in (here, panels):
            end = await last_words(events, AT_ONCE_S)
            assert end.type == "access.ended"
            assert end.data["reason"] == "key_revoked"
            assert end.data["last_event_id"]
        # Another key of the same tenant keeps its stream.
        await say(client, keys, "t2", "still there?")
        event = await unaffected.next()
        assert (event.type, event.data["record"]["id"]) == ("turn.appended", "t2")
    again = await other.get(f"/v1/handoffs/events?access_token={panel}")
    assert again.status == 401


async def test_a_key_rotated_with_a_grace_period_keeps_its_streams_until_the_grace_ends(
        client: Client, make_client: AppFactory, keys: Keys) -> None:
    other = await make_client()
    cus_id = await say(client, keys, "t1", "hello")
    old = await key_id(client, keys)
    path = f"/v1/customers/{cus_id}/events"
    async with following(other, path, keys("agent")) as before:
        rotated_at = time.monotonic()
        r = await client.post(f"/v1/admin/keys/{old}/rotate", headers=keys("admin"),
                              json={"grace_seconds": 2})
        assert r.status == 201
        # A stream opened during the grace period is held to it as well.
        async with following(other, path, keys("agent")) as during:
            await say(client, keys, "t2", "are you there?")
            for events in (before, during):
                assert (await events.next()).data["record"]["id"] == "t2"
            for events in (before, during):
                end = await last_words(events, 2 + AT_ONCE_S)
                assert (end.type, end.data["reason"]) == ("access.ended", "key_expired")
            assert time.monotonic() - rotated_at >= 1.9


async def test_a_panel_tokens_stream_ends_when_the_token_expires(
        client: Client, make_client: AppFactory, keys: Keys) -> None:
    other = await make_client()
    deps = client.app[DEPS]
    minted_by = Principal(tenant="acme", role="agent", key_id=await key_id(client, keys))
    # Tokens are minted for a minute at least; this one is made to last two seconds.
    expires_ms = (deps.now_ms() // 1000 + 3) * 1000
    token = desktokens.mint(deps, minted_by, "agent-7", expires_ms=expires_ms)
    async with following(other, f"/v1/handoffs/events?access_token={token}", {}) as events:
        end = await last_words(events, 3 + AT_ONCE_S)
        ended_ms = deps.now_ms()
    assert (end.type, end.data["reason"]) == ("access.ended", "token_expired")
    assert expires_ms <= ended_ms < expires_ms + 1000 * AT_ONCE_S
    again = await other.get(f"/v1/handoffs/events?access_token={token}")
    assert again.status == 401
    assert (await again.json())["reason"] == "expired"


async def test_a_revocation_whose_notice_was_missed_still_ends_the_stream(
        client: Client, keys: Keys) -> None:
    """The key is marked revoked in Redis without the notice every process listens for (as if
    this process was reconnecting to Redis when it went out): the periodic re-read catches it."""
    client.app[LIFETIMES].recheck_s = 0.3
    store = client.app[DEPS].store
    doomed = await key_id(client, keys)
    async with following(client, "/v1/handoffs/events", keys("agent")) as events:
        digest = await store.access.api_key_digest(doomed)
        assert digest is not None
        await store.access.update_api_key(digest, {"revoked_ms": str(int(time.time() * 1000))})
        # Keys are remembered for up to 5 s: the re-read sees the change once that runs out.
        end = await last_words(events, 5 + 1 + AT_ONCE_S)
    assert (end.type, end.data["reason"]) == ("access.ended", "key_revoked")


# -- a fair share of a process ------------------------------------------------------------------


async def test_a_tenant_at_its_stream_cap_gets_429_while_another_tenant_opens_streams_freely(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(max_event_streams=10, max_event_streams_per_tenant=4,
                            max_event_streams_per_key=2)
    second = bearer((await new_agent_key(app, keys))["key"])
    r = await app.post("/v1/desk/tokens", headers=keys("agent"), json={"agent_id": "agent-7"})
    panel = (await r.json())["token"]
    path = "/v1/handoffs/events"
    opened = [await app.get(path, headers=keys("agent")) for _ in range(2)]
    try:
        # The key holds its share ...
        refused = await app.get(path, headers=keys("agent"))
        assert refused.status == 429
        assert refused.content_type == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert "key" in (await refused.json())["detail"]
        # ... an agent's panel, signed in by that key, has a share of its own ...
        opened.append(await app.get(f"{path}?access_token={panel}"))
        # ... another key of the tenant gets in, up to the tenant's share ...
        opened.append(await app.get(path, headers=second))
        refused = await app.get(path, headers=second)
        assert refused.status == 429
        assert "tenant" in (await refused.json())["detail"]
        # ... and another tenant opens its streams as if nothing was going on.
        for _ in range(2):
            opened.append(await app.get(path, headers=keys("agent", "globex")))
        assert [r.status for r in opened] == [200] * 6
    finally:
        for r in opened:
            r.close()
    # Streams closed, room again (once the server has seen them go).
    await until_a_stream_opens(app, path, keys("agent"))


async def test_a_vendors_post_to_an_events_webhook_counts_as_a_request_in_flight(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(max_concurrent_requests=1, requests_per_second_per_key=0)
    answers = await asyncio.gather(*(app.post("/v1/adapters/rasa/events", headers=keys("bot"),
                                              json=tracker()[1]) for _ in range(30)))
    statuses = {r.status for r in answers}
    assert statuses <= {200, 503} and 503 in statuses and 200 in statuses


# -- Redis connections ---------------------------------------------------------------------------

only_one_server = pytest.mark.skipif(CLUSTER, reason="counts the clients of one Redis server")


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Start the application as `handoff serve` runs it: a stream whose client left is not
    cancelled, it finds out at its next write."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> str:
        runner = web.AppRunner(create_app(settings.model_copy(update=overrides)))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def redis_connections(redis_sync: redis.Redis) -> int:
    """Connections whose last command was XREAD: event streams (waiting or done with), and
    each process's one follower of the notices every process listens to."""
    return sum(1 for c in redis_sync.client_list() if c["cmd"] == "xread")


async def followers_listening(redis_sync: redis.Redis) -> int:
    """Wait until both processes (the test client's and the served one) follow the notices."""
    assert await until(lambda: redis_connections(redis_sync) >= 2, 5)
    return redis_connections(redis_sync)


async def until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@asynccontextmanager
async def streams(session: aiohttp.ClientSession, path: str, headers: dict[str, str],
                  count: int) -> AsyncIterator[list[aiohttp.ClientResponse]]:
    """`count` open streams, each past its opening lines (so waiting in Redis for news)."""
    responses = await asyncio.gather(*(session.get(path, headers=headers)
                                       for _ in range(count)))
    try:
        assert [r.status for r in responses] == [200] * count
        for r in responses:
            assert (await r.content.readline()).startswith(b"retry:")
        yield responses
    finally:
        for r in responses:
            r.close()


@only_one_server
async def test_streams_that_ended_leave_no_redis_connections_behind(
        serve: Serve, keys: Keys, client: Client, redis_sync: redis.Redis) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    base = await serve()
    path = f"/v1/customers/{cus_id}/events"
    async with aiohttp.ClientSession(base) as session:
        baseline = await followers_listening(redis_sync)
        for _ in range(2):  # and again: nothing piles up
            async with streams(session, path, keys("agent"), 60):
                assert await until(lambda: redis_connections(redis_sync) >= baseline + 60, 5)
            # Each server-side stream notices its client left at its next keep-alive at the
            # latest, and closes its connection then.
            assert await until(lambda: redis_connections(redis_sync) <= baseline,
                               BLOCK_MS / 1000 + 5), (redis_connections(redis_sync), baseline)
        # Streams opened afterwards work as before.
        async with streams(session, path, keys("agent"), 1) as (response,):
            await say(client, keys, "t2", "still there?")
            events = EventStream(response)
            assert (await events.next()).data["record"]["id"] == "t2"


@only_one_server
async def test_streams_ended_mid_wait_by_a_revocation_close_their_connections_at_once(
        serve: Serve, keys: Keys, client: Client, redis_sync: redis.Redis) -> None:
    base = await serve()
    async with aiohttp.ClientSession(base) as session:
        baseline = await followers_listening(redis_sync)
        async with streams(session, "/v1/handoffs/events", keys("agent"), 20) as responses:
            assert await until(lambda: redis_connections(redis_sync) >= baseline + 20, 5)
            doomed = await key_id(client, keys)
            assert (await client.delete(f"/v1/admin/keys/{doomed}",
                                        headers=keys("admin"))).status == 200
            for response in responses:
                end = await last_words(EventStream(response), AT_ONCE_S)
                assert end.data["reason"] == "key_revoked"
            assert await until(lambda: redis_connections(redis_sync) <= baseline, 1)
