"""Bad input on every write route: a clear problem+json, never a 5xx, and nothing stored.

Every scenario runs against the world of tests/scenario.py (a chat, a redeemed code, a verified
account, a pending hand-off with an unused code), so a write that slipped through would have
something real to change, and the snapshot of every Redis key would show it.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis
from aiohttp.test_utils import TestClient

from tests.conftest import AppFactory, Keys
from tests.redis_peek import Snapshot, assert_unchanged, snapshot
from tests.scenario import (
    ACCEPT_BODY,
    BY_ID,
    CANCEL_BODY,
    FACTS_BODY,
    HANDOFF_BODY,
    KEY_BODY,
    REDEEM_BODY,
    RESOLVE_BODY,
    ROTATE_BODY,
    TURNS_BODY,
    VERIFY_BODY,
    WRITES,
    Answer,
    Json,
    Route,
    World,
    assert_problem,
    build_world,
    call,
    chat_customer,
    phone_customer,
    turn,
)

Client = TestClient[Any, Any]
MSGPACK = "application/msgpack"

TURNS = "POST /v1/conversations/{conversation}/turns"
FACTS = "PUT /v1/customers/{ref}/facts"
VERIFY = "POST /v1/verifications"
HANDOFF = "POST /v1/handoffs"
ACCEPT = "POST /v1/handoffs/{handoff}/accept"
RESOLVE = "POST /v1/handoffs/{handoff}/resolve"
CANCEL = "POST /v1/handoffs/{handoff}/cancel"
HAND_BACK = "POST /v1/handoffs/{handoff}/hand-back"
REDEEM = "POST /v1/continuations/{code}/redeem"
HANDOFF_ONE = "GET /v1/handoffs/{handoff}"
NEW_KEY = "POST /v1/admin/keys"
ROTATE = "POST /v1/admin/keys/{key}/rotate"
ACK = "POST /v1/alerts/{alert}/ack"
OPTIONAL_BODY = (RESOLVE, CANCEL, ROTATE, ACK)


def without(body: Json, name: str) -> Json:
    return {k: v for k, v in body.items() if k != name}


def store(redis_sync: redis.Redis) -> Snapshot:
    """Every key and its contents, attempt counters included: those count wrong keys and wrong
    continuation codes, and a refused body never gets as far as entering either, so they must
    not move. Only an API key's "last used" stamp is left out (see redis_peek.BOOKKEEPING):
    the key was used, whatever the body said."""
    return snapshot(redis_sync)


async def send(client: Client, keys: Keys, world: World, route: Route, *, data: Any,
               content_type: str | None = "application/json",
               headers: dict[str, str] | None = None) -> Answer:
    """The route's request as its first allowed role, with a raw body."""
    sent = {**keys(route.roles[0]), **(headers or {})}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return await call(client, route.method, world.path(route), headers=sent, data=data)


@pytest.fixture
async def world(client: Client, keys: Keys) -> World:
    return await build_world(client, keys)


# -- bodies that do not parse: 400 --------------------------------------------------------------

MALFORMED_JSON: dict[str, bytes] = {
    "cut off": b'{"turns": [{"id": "t1", ',
    "trailing garbage": b'{"note": "ok"} }',
    "single quotes": b"{'agent_id': 'agent-7'}",
    "invalid UTF-8": b'{"note": "\xff\xfe"}',
    "nested ten thousand deep": b"[" * 10_000 + b"]" * 10_000,
}
INVALID_MSGPACK: dict[str, bytes] = {
    "a reserved byte": b"\xc1",
    "a map cut short": b"\x82\xa5turns",
}
WRITE_IDS = [r.id for r in WRITES]


@pytest.mark.parametrize("raw", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_body_that_is_not_json_is_a_bad_request_and_changes_nothing(
        route: Route, raw: bytes, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    assert_problem(await send(client, keys, world, route, data=raw), 400)
    assert_unchanged(before, store(redis_sync))


@pytest.mark.parametrize("raw", INVALID_MSGPACK.values(), ids=INVALID_MSGPACK.keys())
@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_body_that_is_not_msgpack_is_a_bad_request_and_changes_nothing(
        route: Route, raw: bytes, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    assert_problem(await send(client, keys, world, route, data=raw, content_type=MSGPACK), 400)
    assert_unchanged(before, store(redis_sync))


# -- bodies that parse but do not validate: 422 with errors ----------------------------------

# (route, what is wrong, body, where the error points)
INVALID: list[tuple[str, str, Json, tuple[str | int, ...]]] = [
    (TURNS, "turns is not a list", {**TURNS_BODY, "turns": "hello"}, ("turns",)),
    (TURNS, "no turns at all", without(TURNS_BODY, "turns"), ("turns",)),
    (TURNS, "an empty turn list", {**TURNS_BODY, "turns": []}, ("turns",)),
    (TURNS, "a timestamp without a zone",
     {**TURNS_BODY, "turns": [turn("t9", "hi", ts="2026-11-23T10:02:00")]}, ("turns", 0, "ts")),
    (TURNS, "a turn without text",
     {**TURNS_BODY, "turns": [without(turn("t9", "hi"), "text")]}, ("turns", 0, "text")),
    (TURNS, "a confidence above one",
     {**TURNS_BODY, "turns": [turn("t9", "hi", confidence=1.5)]}, ("turns", 0, "confidence")),
    (TURNS, "a channel that does not exist", {**TURNS_BODY, "channel": "fax"}, ("channel",)),
    (TURNS, "an unknown field", {**TURNS_BODY, "colour": "blue"}, ("colour",)),
    (TURNS, "an unknown field in a turn",
     {**TURNS_BODY, "turns": [turn("t9", "hi", sentiment="sad")]},
     ("turns", 0, "sentiment")),
    (TURNS, "an identity of an unknown kind",
     {**TURNS_BODY, "customer": {"identities": [{"kind": "passport", "value": "X1"}]}},
     ("customer", "identities", 0, "kind")),
    (TURNS, "a phone number that is not one",
     {**TURNS_BODY, "customer": chat_customer("visitor-42", {"kind": "phone",
                                                             "value": "call me maybe"})},
     ("customer", "identities", 1, "value")),
    (FACTS, "facts is a list", {"facts": ["callback"]}, ("facts",)),
    (FACTS, "no facts at all", {}, ("facts",)),
    (FACTS, "a fact key that starts with a digit", {"facts": {"9lives": "yes"}}, ("facts",)),
    (FACTS, "an unknown field", {**FACTS_BODY, "colour": "blue"}, ("colour",)),
    (VERIFY, "expires_in is a word", {**VERIFY_BODY, "expires_in": "soon"}, ("expires_in",)),
    (VERIFY, "no method", without(VERIFY_BODY, "method"), ("method",)),
    (VERIFY, "no identity", without(VERIFY_BODY, "identity"), ("identity",)),
    (VERIFY, "a level that does not exist", {**VERIFY_BODY, "level": "extreme"}, ("level",)),
    (VERIFY, "an unknown field", {**VERIFY_BODY, "colour": "blue"}, ("colour",)),
    (HANDOFF, "priority is a word", {**HANDOFF_BODY, "priority": "urgent"}, ("priority",)),
    (HANDOFF, "priority out of range", {**HANDOFF_BODY, "priority": 9}, ("priority",)),
    (HANDOFF, "no reason", without(HANDOFF_BODY, "reason"), ("reason",)),
    (HANDOFF, "a queue with spaces", {**HANDOFF_BODY, "queue": "Billing Dept"}, ("queue",)),
    (HANDOFF, "an unknown field", {**HANDOFF_BODY, "colour": "blue"}, ("colour",)),
    (ACCEPT, "agent_id is a number", {"agent_id": 7}, ("agent_id",)),
    (ACCEPT, "no agent_id", {}, ("agent_id",)),
    (ACCEPT, "an agent_id with a newline", {"agent_id": "agent\n7"}, ("agent_id",)),
    (ACCEPT, "an unknown field", {**ACCEPT_BODY, "colour": "blue"}, ("colour",)),
    (RESOLVE, "note is a number", {"note": 5}, ("note",)),
    (RESOLVE, "an empty agent_id", {"agent_id": ""}, ("agent_id",)),
    (RESOLVE, "an unknown field", {**RESOLVE_BODY, "colour": "blue"}, ("colour",)),
    (CANCEL, "note is a list", {"note": ["x"]}, ("note",)),
    (CANCEL, "an unknown field", {**CANCEL_BODY, "colour": "blue"}, ("colour",)),
    (REDEEM, "conversation_id is a number", {**REDEEM_BODY, "conversation_id": 7},
     ("conversation_id",)),
    (REDEEM, "no conversation_id", without(REDEEM_BODY, "conversation_id"),
     ("conversation_id",)),
    (REDEEM, "an unknown field", {**REDEEM_BODY, "colour": "blue"}, ("colour",)),
    (REDEEM, "a caller number that is not one",
     {**REDEEM_BODY, "customer": phone_customer("call me maybe")},
     ("customer", "identities", 0, "value")),
    (NEW_KEY, "a role that does not exist", {"role": "root"}, ("role",)),
    (NEW_KEY, "no role", without(KEY_BODY, "role"), ("role",)),
    (NEW_KEY, "an unknown field", {**KEY_BODY, "tenant": "globex"}, ("tenant",)),
    (ROTATE, "grace_seconds is a word", {"grace_seconds": "a while"}, ("grace_seconds",)),
    (ROTATE, "a negative grace", {"grace_seconds": -1}, ("grace_seconds",)),
    (ROTATE, "an unknown field", {**ROTATE_BODY, "colour": "blue"}, ("colour",)),
]


def assert_errors_point_at(problem: Json, loc: tuple[str | int, ...]) -> None:
    errors = problem["errors"]
    assert errors, "a 422 names what is wrong"
    for error in errors:
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str) and error["msg"]
    assert any(tuple(e["loc"][:len(loc)]) == loc for e in errors), errors


@pytest.mark.parametrize(("route_id", "body", "loc"), [(r, b, loc) for r, _, b, loc in INVALID],
                         ids=[f"{r} with {what}" for r, what, _, _ in INVALID])
async def test_a_body_that_does_not_validate_is_unprocessable_and_changes_nothing(
        route_id: str, body: Json, loc: tuple[str | int, ...], client: Client, keys: Keys,
        world: World, redis_sync: redis.Redis) -> None:
    route = BY_ID[route_id]
    before = store(redis_sync)
    answer = await send(client, keys, world, route, data=json.dumps(body))
    assert_errors_point_at(assert_problem(answer, 422), loc)
    assert_unchanged(before, store(redis_sync))


@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_the_same_mistakes_in_msgpack_are_unprocessable_too(
        route: Route, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    body = msgpack.packb({**(route.body or {}), "colour": "blue"})
    answer = await send(client, keys, world, route, data=body, content_type=MSGPACK)
    assert_errors_point_at(assert_problem(answer, 422), ("colour",))
    assert_unchanged(before, store(redis_sync))


NOT_OBJECTS = {"an array": b"[]", "a string": b'"hello"', "a number": b"42"}


@pytest.mark.parametrize("raw", NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_json_body_that_is_not_an_object_is_unprocessable(
        route: Route, raw: bytes, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    problem = assert_problem(await send(client, keys, world, route, data=raw), 422)
    assert problem["errors"]
    assert_unchanged(before, store(redis_sync))


@pytest.mark.parametrize("route", [r for r in WRITES if r.id not in OPTIONAL_BODY],
                         ids=[i for i in WRITE_IDS if i not in OPTIONAL_BODY])
async def test_a_missing_body_is_unprocessable_where_one_is_required(
        route: Route, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    problem = assert_problem(await send(client, keys, world, route, data=b""), 422)
    assert problem["errors"]
    assert_unchanged(before, store(redis_sync))


async def test_a_first_post_that_does_not_name_its_channel_is_refused_and_leaves_no_trace(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    answer = await call(client, "POST", "/v1/conversations/web-new/turns", headers=keys("bot"),
                        json_body={"customer": chat_customer("visitor-new"),
                                   "turns": [turn("n1", "hello?")]})
    assert_errors_point_at(assert_problem(answer, 422), ("channel",))
    assert_unchanged(before, store(redis_sync))


BAD_PATHS = {
    "a conversation id of 129 characters": ("/v1/conversations/" + "c" * 129 + "/turns",
                                            TURNS_BODY, ("path", "conversation_id")),
    "a continuation code with letters": ("/v1/continuations/12ab56/redeem", REDEEM_BODY,
                                         ("path", "code")),
    "a continuation code too short": ("/v1/continuations/123/redeem", REDEEM_BODY,
                                      ("path", "code")),
}


@pytest.mark.parametrize(("path", "body", "loc"), BAD_PATHS.values(), ids=BAD_PATHS.keys())
async def test_a_malformed_path_parameter_is_unprocessable_and_changes_nothing(
        path: str, body: Json, loc: tuple[str, ...], client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    answer = await call(client, "POST", path, headers=keys("ivr"), json_body=body)
    assert_errors_point_at(assert_problem(answer, 422), loc)
    assert_unchanged(before, store(redis_sync))


async def test_an_idempotency_key_reused_for_a_different_request_is_refused(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    key = {**keys("bot"), "Idempotency-Key": "retry-1"}
    first = await call(client, "POST", "/v1/handoffs", headers=key, json_body=HANDOFF_BODY)
    assert first.status == 201
    before = store(redis_sync)
    answer = await call(client, "POST", "/v1/handoffs", headers=key,
                        json_body={**HANDOFF_BODY, "priority": 1})
    assert_errors_point_at(assert_problem(answer, 422), ("header", "Idempotency-Key"))
    assert_unchanged(before, store(redis_sync))


async def test_an_overlong_idempotency_key_is_unprocessable(
        client: Client, keys: Keys, world: World, redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    answer = await call(client, "POST", "/v1/handoffs",
                        headers={**keys("bot"), "Idempotency-Key": "k" * 200},
                        json_body=HANDOFF_BODY)
    assert_errors_point_at(assert_problem(answer, 422), ("header", "Idempotency-Key"))
    assert_unchanged(before, store(redis_sync))


# -- media types and sizes: 415, 413 -----------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_body_of_an_unsupported_media_type_is_refused_and_changes_nothing(
        route: Route, content_type: str, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    answer = await send(client, keys, world, route, data=json.dumps(route.body),
                        content_type=content_type)
    assert content_type in assert_problem(answer, 415)["detail"]
    assert_unchanged(before, store(redis_sync))


def padded(body: Json | None, size: int) -> bytes:
    """Valid JSON of exactly `size` bytes: only its size is wrong."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_body_over_a_configured_limit_is_too_large_and_changes_nothing(
        route: Route, make_client: AppFactory, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    small = await make_client(max_body_bytes=2048)
    before = store(redis_sync)
    answer = await send(small, keys, world, route, data=padded(route.body, 4096))
    assert_problem(answer, 413)
    assert_unchanged(before, store(redis_sync))


@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_streamed_body_without_length_over_the_limit_is_too_large_too(
        route: Route, make_client: AppFactory, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    small = await make_client(max_body_bytes=2048)
    raw = padded(route.body, 4096)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 512):
            yield raw[start:start + 512]

    before = store(redis_sync)
    assert_problem(await send(small, keys, world, route, data=chunks()), 413)
    assert_unchanged(before, store(redis_sync))


@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_two_megabyte_body_is_over_the_default_one_megabyte_limit(
        route: Route, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    before = store(redis_sync)
    big = io.BytesIO(padded(route.body, 2 * 1024 * 1024))  # a file-like body: sent in pieces
    answer = await send(client, keys, world, route, data=big)
    assert_problem(answer, 413)
    assert_unchanged(before, store(redis_sync))


# -- msgpack works both ways ------------------------------------------------------------------

ANSWERS_WITH = {TURNS: "appended", FACTS: "updated", VERIFY: "verified", HANDOFF: "id",
                ACCEPT: "handoff", RESOLVE: "status", CANCEL: "status", REDEEM: "customer_id",
                HAND_BACK: "status",
                NEW_KEY: "key", ROTATE: "key", "POST /v1/admin/webhooks": "secret",
                "POST /v1/desk/tokens": "token",
                "POST /v1/customers/{ref}/reask-check": "reasks", ACK: "acknowledged_by"}


@pytest.mark.parametrize("route", WRITES, ids=WRITE_IDS)
async def test_a_msgpack_body_works_and_accept_msgpack_answers_msgpack(
        route: Route, client: Client, keys: Keys, world: World) -> None:
    if route.id == HAND_BACK:  # only a hand-off an agent has taken can be handed back
        await call(client, "POST", f"/v1/handoffs/{world.handoff_id}/accept",
                   headers=keys("agent"), json_body=ACCEPT_BODY)
    answer = await send(client, keys, world, route, data=msgpack.packb(route.body),
                        content_type=MSGPACK, headers={"Accept": MSGPACK})
    assert answer.status == route.status, answer.raw[:300]
    assert answer.content_type == MSGPACK
    result = msgpack.unpackb(answer.raw)
    assert ANSWERS_WITH[route.id] in result


async def test_a_msgpack_turn_is_stored_like_a_json_one(client: Client, keys: Keys,
                                                        world: World) -> None:
    body = {**TURNS_BODY, "turns": [turn("m1", "sent as msgpack")]}
    answer = await call(client, "POST", "/v1/conversations/web-7f3a/turns",
                        headers={**keys("bot"), "Content-Type": MSGPACK},
                        data=msgpack.packb(body))
    assert answer.status == 200 and answer.content_type == "application/json"
    context = await call(client, "GET", f"/v1/customers/{world.customer_id}/context",
                         headers={**keys("agent"), "Accept": MSGPACK})
    assert context.content_type == MSGPACK
    assert msgpack.unpackb(context.raw)["turns"][-1]["text"] == "sent as msgpack"


# -- unknown things: 404, 405 ---------------------------------------------------------------------

UNKNOWN_HANDOFFS = {"a well-formed id nobody issued": "ho_01JC0000000000000000000000",
                    "not an id at all": "nothing-like-an-id",
                    "an id far too long": "ho_" + "X" * 100}


@pytest.mark.parametrize("handoff", UNKNOWN_HANDOFFS.values(), ids=UNKNOWN_HANDOFFS.keys())
@pytest.mark.parametrize("route_id", [HANDOFF_ONE, ACCEPT, RESOLVE, CANCEL])
async def test_an_unknown_handoff_is_not_found_and_changes_nothing(
        route_id: str, handoff: str, client: Client, keys: Keys, world: World,
        redis_sync: redis.Redis) -> None:
    route = BY_ID[route_id]
    before = store(redis_sync)
    answer = await call(client, route.method, route.path.format(handoff=handoff),
                        headers=keys(route.roles[0]), json_body=route.body)
    assert_problem(answer, 404)
    assert_unchanged(before, store(redis_sync))


UNKNOWN_ROUTES = [("GET", "/v1/nowhere"), ("GET", "/v2/handoffs"),
                  ("POST", "/v1/conversations/web-7f3a"), ("GET", "/v1/handoffs/a/b/c"),
                  ("GET", "/v1/customers/x/y/z")]
WRONG_METHODS = [("PATCH", "/v1/handoffs"), ("GET", "/v1/verifications"),
                 ("GET", "/v1/conversations/web-7f3a/turns"),
                 ("PUT", "/v1/handoffs/ho_01JC0000000000000000000000/accept"),
                 ("POST", "/v1/customers/chat:visitor-42/context"),
                 ("PATCH", "/v1/continuations/123456/redeem")]


@pytest.mark.parametrize(("method", "path"), UNKNOWN_ROUTES, ids=[p for _, p in UNKNOWN_ROUTES])
async def test_an_unknown_route_is_a_not_found_problem(method: str, path: str, client: Client,
                                                       keys: Keys) -> None:
    assert_problem(await call(client, method, path, headers=keys("agent")), 404)


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS,
                         ids=[f"{m} {p}" for m, p in WRONG_METHODS])
async def test_a_wrong_method_is_a_method_not_allowed_problem(
        method: str, path: str, client: Client, keys: Keys) -> None:
    answer = await call(client, method, path, headers=keys("agent"), json_body={})
    assert_problem(answer, 405)
    assert method not in answer.headers["Allow"]


# -- query parameters: 422 -------------------------------------------------------------------

BAD_QUERIES = [
    ("/v1/handoffs?limit=0", "limit"), ("/v1/handoffs?limit=abc", "limit"),
    ("/v1/handoffs?limit=501", "limit"), ("/v1/handoffs?status=bogus", "status"),
    ("/v1/handoffs?before=garbage", "before"), ("/v1/handoffs?queue=Not%20A%20Queue", "queue"),
    ("/v1/customers/{ref}/turns?limit=0", "limit"),
    ("/v1/customers/{ref}/turns?limit=abc", "limit"),
    ("/v1/customers/{ref}/turns?before=garbage", "before"),
    ("/v1/customers/{ref}/context?turns=9999", "turns"),
    ("/v1/customers/{ref}/context?turns=abc", "turns"),
    ("/v1/customers/{ref}/context?turns=-1", "turns"),
]


@pytest.mark.parametrize(("path", "name"), BAD_QUERIES, ids=[p for p, _ in BAD_QUERIES])
async def test_a_bad_query_parameter_is_unprocessable(path: str, name: str, client: Client,
                                                      keys: Keys, world: World) -> None:
    answer = await call(client, "GET", path.format(ref=world.customer_id),
                        headers=keys("agent"))
    assert_errors_point_at(assert_problem(answer, 422), ("query", name))


async def test_reading_a_customer_that_does_not_exist_leaves_no_audit_entry(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    for ref in ("cus_01M88XBBF1QG5BD6CKKM8GNMG5", "chat:nobody"):
        r = await client.get(f"/v1/customers/{ref}/context", headers=keys("agent"))
        assert r.status == 404
        r = await client.get(f"/v1/customers/{ref}/context",
                             headers={**keys("agent"), "If-None-Match": '"x"'})
        assert r.status == 404
    assert_unchanged(before, snapshot(redis_sync))


@pytest.mark.parametrize("where", ["fact key", "entity name"])
async def test_a_card_number_used_as_the_name_of_a_fact_is_refused_and_stored_nowhere(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis, where: str) -> None:
    # Ids a platform assigns are stored digested instead (tests/test_card_like_ids.py); the
    # names of facts and entities are the integrator's own words, and digested would mean
    # nothing to an agent.
    card = "4111111111111111"
    body: dict[str, Any] = {
        "customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
        "channel": "chat", "source": "acme-bot",
        "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": "2026-11-23T10:02:00Z",
                   "entities": {f"card{card}" if where == "entity name" else "order": "A-1"}}],
        "facts": {f"card{card}" if where == "fact key" else "order": "A-1"}}
    before = snapshot(redis_sync)
    r = await client.post("/v1/conversations/web-1/turns", json=body, headers=keys("bot"))
    assert r.status == 422, await r.text()
    assert card not in await r.text()
    assert_unchanged(before, snapshot(redis_sync))
