"""Hostile input: absurd nesting, sizes, bytes and numbers get a clear 4xx and change nothing.

Each case runs against the world of tests/scenario.py, so a write that slipped through would
have something real to change, and a snapshot of every Redis key would show it. A slow-loris
crowd of half-sent requests must not stop the service answering everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from typing import Any

import msgpack
import pytest
import redis
from aiohttp import ClientTimeout
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.redis_peek import assert_unchanged, snapshot
from tests.scenario import (
    CALL,
    CONVERSATION,
    HANDOFF_BODY,
    TS,
    TURNS_BODY,
    VERIFY_BODY,
    Answer,
    Json,
    World,
    assert_problem,
    build_world,
    call,
    chat_customer,
    ok,
    turn,
)

Client = TestClient[Any, Any]
JSON = {"Content-Type": "application/json"}
TURNS_PATH = f"/v1/conversations/{CONVERSATION}/turns"
DEEP = 100_000


@pytest.fixture
async def world(client: Client, keys: Keys) -> World:
    return await build_world(client, keys)


async def post_raw(client: Client, keys: Keys, path: str, raw: Any, role: str = "bot",
                   content_type: str = "application/json") -> Answer:
    return await call(client, "POST", path, data=raw,
                      headers={**keys(role), "Content-Type": content_type})


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_turn(**more: Any) -> Json:
    """The world's usual turns body, its one turn carrying `more`."""
    return {**TURNS_BODY, "turns": [{**TURNS_BODY["turns"][0], **more}]}


# -- nesting, size and encoding: 400 and 413 ------------------------------------------------


async def test_a_body_of_a_hundred_thousand_nested_arrays_is_a_bad_request(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    assert_problem(await post_raw(client, keys, TURNS_PATH, nested_arrays(DEEP)), 400)
    assert_unchanged(before, snapshot(redis_sync))


async def test_a_hundred_thousand_nested_arrays_in_a_turns_entities_are_a_bad_request(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    head, _, tail = json.dumps(with_turn(entities={"order": "HOLE"})).encode().partition(
        b'"HOLE"')
    before = snapshot(redis_sync)
    answer = await post_raw(client, keys, TURNS_PATH, head + nested_arrays(DEEP) + tail)
    assert_problem(answer, 400)
    assert_unchanged(before, snapshot(redis_sync))


async def test_a_hundred_thousand_nested_msgpack_arrays_are_a_bad_request(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    raw = b"\x91" * DEEP + b"\xc0"  # fixarray of one element, a hundred thousand times, nil
    before = snapshot(redis_sync)
    answer = await post_raw(client, keys, TURNS_PATH, raw, content_type="application/msgpack")
    assert_problem(answer, 400)
    assert_unchanged(before, snapshot(redis_sync))


async def test_a_ten_megabyte_body_is_too_large(client: Client, keys: Keys, world: World,
                                                redis_sync: redis.Redis) -> None:
    padding = "x" * (10 * 1024 * 1024)
    raw = json.dumps(with_turn(text=padding)).encode()
    before = snapshot(redis_sync)
    assert_problem(await post_raw(client, keys, TURNS_PATH, io.BytesIO(raw)), 413)
    assert_unchanged(before, snapshot(redis_sync))


async def test_invalid_utf8_inside_a_turns_text_is_a_bad_request(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    head, _, tail = json.dumps(with_turn(text="HOLE")).encode().partition(b"HOLE")
    before = snapshot(redis_sync)
    answer = await post_raw(client, keys, TURNS_PATH, head + b"caf\xc3(\xff\xfe" + tail)
    assert_problem(answer, 400)
    assert_unchanged(before, snapshot(redis_sync))


# -- NUL bytes: refused where they would become keys, kept where they are text ----------------

NUL_BODIES: dict[str, tuple[str, Json]] = {
    "in a chat identity": (TURNS_PATH, {**TURNS_BODY,
                                        "customer": chat_customer("visitor\x0042")}),
    "in an email identity": (TURNS_PATH, {**TURNS_BODY, "customer": chat_customer(
        "visitor-42", {"kind": "email", "value": "ana\x00@example.com"})}),
    "in a turn id": (TURNS_PATH, with_turn(id="t\x009")),
    "in a conversation id": ("/v1/conversations/web%00x/turns", TURNS_BODY),
    "in a hand-off's conversation id": ("/v1/handoffs",
                                        {**HANDOFF_BODY, "conversation_id": "web\x00x"}),
}


@pytest.mark.parametrize(("path", "body"), NUL_BODIES.values(), ids=NUL_BODIES.keys())
async def test_a_nul_byte_in_an_identifier_is_unprocessable(
        path: str, body: Json, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    answer = await call(client, "POST", path, headers=keys("bot"), json_body=body)
    assert_problem(answer, 422)
    assert_unchanged(before, snapshot(redis_sync))


async def test_a_nul_byte_in_a_turns_text_is_stored_as_text_and_read_back_identically(
        client: Client, keys: Keys, world: World) -> None:
    text = "before\x00after \x00\x00 end"
    await ok(client, "POST", TURNS_PATH, keys("bot"), with_turn(id="t-nul", text=text))
    page = await ok(client, "GET", f"/v1/customers/{world.customer_id}/turns?limit=500",
                    keys("agent"))
    stored = [t["text"] for t in page["items"] if t["id"] == "t-nul"]
    assert stored == [text]


async def test_a_nul_byte_in_a_msgpack_turns_text_is_read_back_identically_in_msgpack(
        client: Client, keys: Keys, world: World) -> None:
    text = "\x00leading and trailing\x00"
    sent = await call(client, "POST", TURNS_PATH,
                      data=msgpack.packb(with_turn(id="t-nul-mp", text=text)),
                      headers={**keys("bot"), "Content-Type": "application/msgpack"})
    assert sent.status == 200, sent.raw[:300]
    read = await call(client, "GET", f"/v1/customers/{world.customer_id}/turns?limit=500",
                      headers={**keys("agent"), "Accept": "application/msgpack"})
    page = msgpack.unpackb(read.raw, raw=False)
    assert [t["text"] for t in page["items"] if t["id"] == "t-nul-mp"] == [text]


# -- unicode confusables are different identities --------------------------------------------

CYRILLIC_A = "\u0430"  # looks exactly like the Latin "a"
CYRILLIC_I = "\u0456"  # looks exactly like the Latin "i"


async def first_post(client: Client, keys: Keys, conversation: str, channel: str,
                     identity: Json) -> str:
    body = {"customer": {"identities": [identity]}, "channel": channel, "source": "acme-bot",
            "turns": [turn(f"{conversation}-1", "hello")]}
    answer = await ok(client, "POST", f"/v1/conversations/{conversation}/turns", keys("bot"),
                      body)
    customer_id: str = answer["customer_id"]
    return customer_id


async def test_a_chat_id_with_a_cyrillic_letter_is_a_different_customer(
        client: Client, keys: Keys, world: World) -> None:
    lookalike = await first_post(client, keys, "web-lookalike", "chat",
                                 {"kind": "chat", "value": f"v{CYRILLIC_I}sitor-42"})
    assert lookalike != world.customer_id
    same = await first_post(client, keys, "web-same", "chat",
                            {"kind": "chat", "value": "visitor-42"})
    assert same == world.customer_id


async def test_an_email_with_a_cyrillic_letter_is_a_different_customer(
        client: Client, keys: Keys) -> None:
    latin = await first_post(client, keys, "mail-1", "email",
                             {"kind": "email", "value": "ana@example.com"})
    lookalike = await first_post(client, keys, "mail-2", "email",
                                 {"kind": "email",
                                  "value": f"{CYRILLIC_A}na@ex{CYRILLIC_A}mple.com"})
    again = await first_post(client, keys, "mail-3", "email",
                             {"kind": "email", "value": "ANA@example.com"})
    assert lookalike != latin
    assert again == latin


async def test_an_agent_looking_up_a_cyrillic_lookalike_chat_id_finds_nobody(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    answer = await call(client, "GET", f"/v1/customers/chat:v{CYRILLIC_I}sitor-42/context",
                        headers=keys("agent"))
    assert_problem(answer, 404)
    assert_unchanged(before, snapshot(redis_sync))


# -- numbers out of range and too many turns: 422 ---------------------------------------------

BAD_NUMBERS: dict[str, tuple[str, str, Json]] = {
    "priority -1": ("/v1/handoffs", "bot", {**HANDOFF_BODY, "priority": -1}),
    "priority 10**30": ("/v1/handoffs", "bot", {**HANDOFF_BODY, "priority": 10**30}),
    "confidence 1e308": (TURNS_PATH, "bot", with_turn(confidence=1e308)),
    "confidence -1e308": (TURNS_PATH, "bot", with_turn(confidence=-1e308)),
    "expires_in -5": ("/v1/verifications", "ivr", {**VERIFY_BODY, "expires_in": -5}),
    "expires_in 10**30": ("/v1/verifications", "ivr", {**VERIFY_BODY, "expires_in": 10**30}),
    "10,000 turns": (TURNS_PATH, "bot", {**TURNS_BODY, "turns": [
        turn(f"bulk-{n}", "spam") for n in range(10_000)]}),
    "501 turns": (TURNS_PATH, "bot", {**TURNS_BODY, "turns": [
        turn(f"bulk-{n}", "spam") for n in range(501)]}),
}


@pytest.mark.parametrize(("path", "role", "body"), BAD_NUMBERS.values(),
                         ids=BAD_NUMBERS.keys())
async def test_a_number_out_of_range_in_a_body_is_unprocessable(
        path: str, role: str, body: Json, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    assert_problem(await call(client, "POST", path, headers=keys(role), json_body=body), 422)
    assert_unchanged(before, snapshot(redis_sync))


async def test_an_infinite_confidence_is_unprocessable(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    raw = json.dumps(with_turn(confidence=1.0)).encode().replace(b"1.0", b"1e999")
    before = snapshot(redis_sync)
    assert_problem(await post_raw(client, keys, TURNS_PATH, raw), 422)
    assert_unchanged(before, snapshot(redis_sync))


BAD_QUERIES = {
    "limit=-1 on the transcript": "/v1/customers/{ref}/turns?limit=-1",
    "limit=-1 on the queue": "/v1/handoffs?limit=-1",
    "turns=10**20 on the brief": "/v1/customers/{ref}/context?turns=" + str(10**20),
    "limit=10**20 on the transcript": "/v1/customers/{ref}/turns?limit=" + str(10**20),
}


@pytest.mark.parametrize("path", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
async def test_a_number_out_of_range_in_a_query_is_unprocessable(
        path: str, client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    answer = await call(client, "GET", path.format(ref=world.customer_id),
                        headers=keys("agent"))
    assert_problem(answer, 422)
    assert_unchanged(before, snapshot(redis_sync))


# -- header injection through the query form of Last-Event-ID ----------------------------------


async def test_a_queue_stream_last_event_id_query_with_a_line_break_is_a_bad_request(
        client: Client, keys: Keys, world: World) -> None:
    answer = await call(client, "GET", "/v1/handoffs/events?last_event_id=1-1%0d%0aX: y",
                        headers=keys("agent"))
    assert_problem(answer, 400)
    assert "X" not in answer.headers
    assert b"X: y" not in answer.raw


# -- slow loris ---------------------------------------------------------------------------------

LORIS = 50
REQUEST_LINE = f"POST /v1/conversations/{CALL}/turns HTTP/1.1\r\nHost: x\r\n".encode()


async def drip(writer: asyncio.StreamWriter) -> None:
    """One byte of a request every 0.2 s, for as long as the server keeps the socket."""
    with contextlib.suppress(ConnectionError):
        for byte in REQUEST_LINE:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)


async def test_fifty_slow_loris_connections_do_not_stop_normal_requests(
        client: Client, keys: Keys, world: World) -> None:
    host, port = client.server.host, client.server.port
    assert port is not None
    connections = await asyncio.gather(*(asyncio.open_connection(host, port)
                                         for _ in range(LORIS)))
    opened = [writer for _, writer in connections]
    crowd = [asyncio.create_task(drip(writer)) for writer in opened]
    try:
        await asyncio.sleep(0.5)  # every socket is part-way through its request line
        limit = ClientTimeout(total=5)
        for n in range(5):
            async with client.get("/healthz", timeout=limit) as health:
                assert health.status == 200
            async with client.get(f"/v1/customers/{world.customer_id}/context",
                                  headers=keys("agent"), timeout=limit) as brief:
                assert brief.status == 200
            async with client.post(TURNS_PATH, headers={**keys("bot"), **JSON}, timeout=limit,
                                   json=with_turn(id=f"during-loris-{n}", ts=TS)) as written:
                assert written.status == 200
        assert not any(task.done() for task in crowd), "the crowd was meant to be still dripping"
    finally:
        for task in crowd:
            task.cancel()
        await asyncio.gather(*crowd, return_exceptions=True)
        for writer in opened:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
