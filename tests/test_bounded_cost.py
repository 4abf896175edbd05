"""Appending a turn and reading the brief cost the same whatever the history length, and the brief
is cacheable: the last N turns, an ETag that moves only when the context does."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.cluster
from aiohttp.test_utils import TestClient

from handoff.settings import Settings
from tests.conftest import Keys, RedisServer

Client = TestClient[Any, Any]
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
BATCH = 500


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background expiry sweep here: its Redis commands would blur the counts."""
    return settings.model_copy(update={"sweep_seconds": 3600.0})


def turn(n: int, text: str | None = None) -> dict[str, Any]:
    return {"id": f"t{n}", "role": "customer", "text": text or f"message {n}",
            "ts": (START + timedelta(seconds=n)).isoformat()}


def visitor(name: str) -> dict[str, Any]:
    return {"identities": [{"kind": "chat", "value": name}]}


async def append(client: Client, keys: Keys, conversation_id: str, turns: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    r = await client.post(f"/v1/conversations/{conversation_id}/turns", headers=keys("bot"),
                          json={"customer": visitor(f"visitor-{conversation_id}"),
                                "channel": "chat", "source": "acme-bot", "turns": turns})
    assert r.status == 200, await r.text()
    result: dict[str, Any] = await r.json()
    assert result["appended"] == len(turns)
    return result


async def history(client: Client, keys: Keys, conversation_id: str, length: int) -> str:
    """A customer whose transcript already holds `length` turns, `BATCH` per request."""
    cus_id = ""
    for first in range(0, length, BATCH):
        result = await append(client, keys, conversation_id,
                              [turn(n) for n in range(first, min(first + BATCH, length))])
        cus_id = result["customer_id"]
    return cus_id


def command_calls(r: redis.Redis) -> Counter[str]:
    """Calls per command since the server started (commands run inside scripts included)."""
    if isinstance(r, redis.cluster.RedisCluster):  # every primary's counts, summed
        stats = r.info("commandstats", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        nodes = [s for s in stats.values() if isinstance(s, dict)]
    else:
        nodes = [r.info("commandstats")]
    calls: Counter[str] = Counter()
    for node in nodes:
        for name, stat in node.items():
            if name.startswith("cmdstat_") and name != "cmdstat_info":
                calls[name.removeprefix("cmdstat_")] += int(stat["calls"])
    return calls


async def commands_of_an_append(client: Client, keys: Keys, r: redis.Redis,
                                conversation_id: str, n: int) -> Counter[str]:
    before = command_calls(r)
    await append(client, keys, conversation_id, [turn(n, "one more thing")])
    return command_calls(r) - before


async def commands_of_a_brief(client: Client, keys: Keys, r: redis.Redis,
                              cus_id: str) -> Counter[str]:
    before = command_calls(r)
    response = await client.get(f"/v1/customers/{cus_id}/context", headers=keys("agent"))
    assert response.status == 200, await response.text()
    await response.read()
    return command_calls(r) - before


async def brief(client: Client, keys: Keys, ref: str, query: str = "",
                headers: dict[str, str] | None = None) -> Any:
    response = await client.get(f"/v1/customers/{ref}/context{query}",
                                headers={**keys("agent"), **(headers or {})})
    await response.read()
    return response


# -- cost independent of history --------------------------------------------------------------


async def test_appending_a_turn_runs_the_same_redis_commands_at_10_and_5000_turns(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await history(client, keys, "short", 10)
    await history(client, keys, "long", 5000)
    # Warm up once (script cache, connections), then measure one append on each.
    await commands_of_an_append(client, keys, redis_sync, "short", 10)
    await commands_of_an_append(client, keys, redis_sync, "long", 5000)

    short = await commands_of_an_append(client, keys, redis_sync, "short", 11)
    long = await commands_of_an_append(client, keys, redis_sync, "long", 5001)

    assert short == long
    assert short["evalsha"] == 1
    assert short["xadd"] == 2  # the turn, and its event


async def test_reading_the_brief_runs_the_same_redis_commands_at_10_and_5000_turns(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    short_id = await history(client, keys, "short", 10)
    long_id = await history(client, keys, "long", 5000)
    await commands_of_a_brief(client, keys, redis_sync, short_id)
    await commands_of_a_brief(client, keys, redis_sync, long_id)
    # A new turn moves the ETag, so the brief is built again rather than served as it was.
    await append(client, keys, "short", [turn(10)])
    await append(client, keys, "long", [turn(5000)])

    short = await commands_of_a_brief(client, keys, redis_sync, short_id)
    long = await commands_of_a_brief(client, keys, redis_sync, long_id)

    assert short == long
    assert short["xrevrange"] == 1  # the latest turns, read by a bounded range
    assert "xrange" not in short and "xlen" not in short


async def test_an_unchanged_brief_read_again_reads_no_turns_at_all(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    cus_id = await history(client, keys, "long", 2000)
    await commands_of_a_brief(client, keys, redis_sync, cus_id)

    again = await commands_of_a_brief(client, keys, redis_sync, cus_id)

    assert "xrevrange" not in again  # built once for this ETag, served again
    assert again["hgetall"] == 2  # meta and verifications: what the ETag is made of


def monitored(port: int, started: threading.Event, stop: str) -> list[str]:
    """Every command the server runs (scripts' inner commands included) until `ECHO stop`."""
    seen: list[str] = []
    with redis.Redis(port=port) as r, r.monitor() as monitor:
        started.set()
        for event in monitor.listen():
            command = str(event["command"])
            if command == f"ECHO {stop}":
                return seen
            seen.append(command)
    return seen


@pytest.mark.skipif(os.environ.get("HANDOFF_TEST_REDIS") == "cluster",
                    reason="MONITOR watches one node")
async def test_the_brief_reads_its_turns_with_a_count_not_the_whole_stream(
        client: Client, keys: Keys, redis_server: RedisServer, redis_sync: redis.Redis) -> None:
    cus_id = await history(client, keys, "long", 5000)
    started = threading.Event()
    watcher = asyncio.create_task(asyncio.to_thread(
        monitored, redis_server.port, started, "brief-done"))
    try:
        assert await asyncio.to_thread(started.wait, 10)
        response = await brief(client, keys, cus_id, "?turns=20")
        assert response.status == 200
    finally:
        redis_sync.echo("brief-done")  # always let the watching thread finish
    commands = await asyncio.wait_for(watcher, 10)
    reads = [c.split() for c in commands if c.split()[0].upper() in ("XREVRANGE", "XRANGE")]
    assert [(c[0].upper(), c[-2].upper(), c[-1]) for c in reads] == [("XREVRANGE", "COUNT", "20")]


# -- which turns the brief holds ---------------------------------------------------------------


async def test_the_brief_holds_the_latest_50_turns_oldest_first_by_default(
        client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 80)
    body = await (await brief(client, keys, cus_id)).json()
    assert [t["id"] for t in body["turns"]] == [f"t{n}" for n in range(30, 80)]


async def test_turns_n_chooses_how_many_of_the_latest_turns_the_brief_holds(
        client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 80)
    body = await (await brief(client, keys, cus_id, "?turns=3")).json()
    assert [t["id"] for t in body["turns"]] == ["t77", "t78", "t79"]


async def test_turns_n_may_ask_for_more_than_the_default(client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 80)
    body = await (await brief(client, keys, cus_id, "?turns=70")).json()
    assert len(body["turns"]) == 70
    assert body["turns"][-1]["id"] == "t79"


async def test_turns_zero_gives_a_brief_without_turns(client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 5)
    body = await (await brief(client, keys, cus_id, "?turns=0")).json()
    assert body["turns"] == []
    assert body["customer"]["id"] == cus_id


@pytest.mark.parametrize("bad", ["501", "-1", "many"])
async def test_turns_outside_0_to_500_is_422(client: Client, keys: Keys, bad: str) -> None:
    cus_id = await history(client, keys, "web-1", 1)
    response = await brief(client, keys, cus_id, f"?turns={bad}")
    assert response.status == 422
    assert response.content_type == "application/problem+json"


# -- ETag ----------------------------------------------------------------------------------------


async def test_asking_again_with_the_current_etag_is_304_without_a_body(
        client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 3)
    first = await brief(client, keys, cus_id)
    tag = first.headers["ETag"]
    again = await brief(client, keys, cus_id, headers={"If-None-Match": tag})
    assert again.status == 304
    assert again.headers["ETag"] == tag
    assert await again.read() == b""


async def test_the_etag_is_the_same_for_an_unchanged_brief(client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 3)
    first = await brief(client, keys, cus_id)
    second = await brief(client, keys, cus_id)
    assert first.headers["ETag"] == second.headers["ETag"]


async def test_an_appended_turn_changes_the_etag_and_the_old_one_gets_the_new_brief(
        client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 3)
    old = (await brief(client, keys, cus_id)).headers["ETag"]
    await append(client, keys, "web-1", [turn(3, "and another thing")])
    response = await brief(client, keys, cus_id, headers={"If-None-Match": old})
    assert response.status == 200
    assert response.headers["ETag"] != old
    assert (await response.json())["turns"][-1]["text"] == "and another thing"


async def test_a_new_verification_changes_the_etag(client: Client, keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 3)
    old = (await brief(client, keys, cus_id)).headers["ETag"]
    r = await client.post("/v1/verifications", headers=keys("agent"), json={
        "customer": visitor("visitor-web-1"), "channel": "chat",
        "identity": {"kind": "account", "value": "88812345"}, "method": "kba"})
    assert r.status == 200, await r.text()
    response = await brief(client, keys, cus_id, headers={"If-None-Match": old})
    assert response.status == 200
    assert response.headers["ETag"] != old
    verified = (await response.json())["verifications"]
    assert [v["identity"]["value"] for v in verified] == ["88812345"]


async def test_a_brief_of_a_different_length_has_a_different_etag(client: Client,
                                                                  keys: Keys) -> None:
    cus_id = await history(client, keys, "web-1", 10)
    default = (await brief(client, keys, cus_id)).headers["ETag"]
    response = await brief(client, keys, cus_id, "?turns=3", headers={"If-None-Match": default})
    assert response.status == 200
    assert response.headers["ETag"] != default


async def test_a_brief_read_again_in_json_and_msgpack_is_the_same_brief_in_each_format(
        client: Client, keys: Keys) -> None:
    import msgpack

    cus_id = await history(client, keys, "web-1", 3)
    as_json = [await (await brief(client, keys, cus_id)).json() for _ in range(2)]
    packed = []
    for _ in range(2):
        r = await brief(client, keys, cus_id, headers={"Accept": "application/msgpack"})
        assert r.headers["Content-Type"] == "application/msgpack"
        packed.append(msgpack.unpackb(await r.read()))
    assert as_json[0] == as_json[1] == packed[0] == packed[1]
    await append(client, keys, "web-1", [turn(3, "and another thing")])
    r = await brief(client, keys, cus_id, headers={"Accept": "application/msgpack"})
    assert msgpack.unpackb(await r.read())["turns"][-1]["text"] == "and another thing"
