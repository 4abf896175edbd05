"""Outbound webhooks: a desk subscribes, handoff POSTs each event to it signed, retries a
receiver that fails, dead-letters one that always fails, and loses nothing to a restart.

Receivers are real aiohttp servers on loopback; the service is real too, on real Redis. Back-off
settings are small so retries happen within a test, never asserted with a timer.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from packaging.requirements import Requirement

from handoff.api.state import DEPS
from handoff.kernel.settings import Settings
from handoff.runtime.outbound import Sender
from handoff.services.delivery import backoff_seconds, signature
from handoff.store import keys as redis_keys
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, snapshot
from tests.scenario import (
    HANDOFF_BODY,
    ROLES,
    Json,
    assert_problem,
    call,
    chat_customer,
    ok,
    ref,
    turn,
    until,
)

# Where deliveries wait, in any tenant; each queued delivery of acme.
DUE_ANYWHERE = redis_keys.webhook_due("*")
DELIVERIES = redis_keys.webhook_delivery("acme", "*")
Client = TestClient[Any, Any]
DOCS = (Path(__file__).parent.parent / "docs" / "webhooks.md").read_text()
FAST = {"webhook_allow_private_networks": True, "webhook_backoff_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2, "webhook_poll_seconds": 0.05,
        "webhook_timeout_seconds": 2.0, "webhook_max_attempts": 3}
PAN = "4111 1111 1111 1111"


def documented_verify() -> Callable[..., bool]:
    """The verification snippet of docs/webhooks.md, run as a receiver would copy it."""
    snippet = re.search(r"## Verifying the signature.*?```python\n(.*?)```", DOCS, re.S)
    assert snippet, "docs/webhooks.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(snippet.group(1), namespace)  # the documentation's own code, nothing else
    verify: Callable[..., bool] = namespace["verify"]
    return verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Json:
        result: Json = json.loads(self.body)
        return result


@dataclass
class Receiver:
    """A desk's webhook endpoint: answers each request with the next planned status (then 200),
    or holds it until `release` is set when the plan says None."""

    url: str
    plan: list[int | None] = field(default_factory=list)
    always: int | None = None
    got: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.plan.pop(0) if self.plan else (self.always or 200)
        if status is None:
            self.got.append(Received(dict(request.headers), body, 0))
            async with self.arrived:
                self.arrived.notify_all()
            await self.release.wait()
            status = 200
        else:
            self.got.append(Received(dict(request.headers), body, status))
            async with self.arrived:
                self.arrived.notify_all()
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        async with asyncio.timeout(seconds), self.arrived:
            await self.arrived.wait_for(lambda: len(self.got) >= count)
        return self.got

    def acknowledged(self) -> list[Received]:
        return [r for r in self.got if 200 <= r.status < 300]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1")
    hook = Receiver(url="")
    app.router.add_post("/hooks", hook.handle)
    await server.start_server()
    hook.url = str(server.make_url("/hooks"))
    yield hook
    hook.release.set()
    await server.close()


async def subscribe(client: Client, keys: Keys, url: str, events: list[str],
                    tenant: str = "acme") -> Json:
    return await ok(client, "POST", "/v1/admin/webhooks", keys("admin", tenant),
                    {"url": url, "events": events, "description": "desk"}, status=201)


async def chat(client: Client, keys: Keys, *turns: Json, conversation: str = "web-7f3a") -> Json:
    return await ok(client, "POST", f"/v1/conversations/{conversation}/turns", keys("bot"), {
        "customer": chat_customer(), "channel": "chat", "source": "acme-bot",
        "turns": list(turns)})


async def settled(redis_sync: redis.Redis, seconds: float = 10.0) -> None:
    """Until no delivery is queued or in flight (every one delivered, dropped or dead)."""
    await until(lambda: not any(redis_sync.zcard(k)
                                for k in redis_sync.scan_iter(DUE_ANYWHERE)), seconds)


async def dead_letters_of(make_client: AppFactory, keys: Keys, receiver: Receiver,
                          redis_sync: redis.Redis, *turns: Json) -> tuple[Client, Json, Json]:
    """A service whose one attempt per delivery fails: each turn posted becomes a dead letter.
    Answers the service, the subscription and what the post answered."""
    client = await make_client(**{**FAST, "webhook_max_attempts": 1})
    receiver.always = 500
    hook = await subscribe(client, keys, receiver.url, ["turn.appended"])
    posted = await chat(client, keys, *turns)
    await receiver.wait_for(len(turns))
    await settled(redis_sync)
    return client, hook, posted


def outcomes(client: Client) -> dict[str, int]:
    return client.app[DEPS].outbox.outcomes()


# -- the receiver that fails twice, then takes it ------------------------------------------------


async def test_a_receiver_that_fails_twice_gets_the_event_once_acknowledged_and_signed(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    receiver.plan = [500, 503]
    hook = await subscribe(client, keys, receiver.url, ["turn.appended"])

    posted = await chat(client, keys, turn("t1", f"I was charged twice on {PAN}"))
    got = await receiver.wait_for(3)
    await settled(redis_sync)

    assert [r.status for r in got] == [500, 503, 200]
    assert len(receiver.acknowledged()) == 1
    assert len({r.headers["Handoff-Delivery-Id"] for r in got}) == 1
    assert [r.headers["Handoff-Attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.body for r in got}) == 1, "every attempt carries the same body"
    verify = documented_verify()
    for attempt in got:
        assert verify([hook["secret"]], attempt.headers["Handoff-Signature"], attempt.body)
        assert not verify(["whsec_another"], attempt.headers["Handoff-Signature"], attempt.body)
        assert not verify([hook["secret"]], attempt.headers["Handoff-Signature"],
                          attempt.body.replace(b"charged", b"refunded"))
    event = got[-1].json()
    assert event["type"] == "turn.appended" and event["tenant"] == "acme"
    assert event["id"] == got[-1].headers["Handoff-Event-Id"]
    assert got[-1].headers["Handoff-Webhook-Id"] == hook["id"]
    assert event["data"]["customer_id"] == posted["customer_id"]
    record = event["data"]["record"]
    assert (record["id"], record["channel"], record["role"]) == ("t1", "chat", "customer")
    assert record["text"] == "I was charged twice on **** **** **** 1111"
    assert b"4111 1111 1111 1111" not in got[-1].body
    counts = outcomes(client)
    assert (counts["queued"], counts["failed"], counts["delivered"]) == (1, 2, 1)
    assert counts["dead"] == 0


async def test_the_webhook_carries_what_the_live_event_stream_carries(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    await subscribe(client, keys, receiver.url, ["*"])
    posted = await chat(client, keys, turn("t1", "Hello"))
    ho = await ok(client, "POST", "/v1/handoffs", keys("bot"), HANDOFF_BODY, status=201)
    await receiver.wait_for(2)
    await settled(redis_sync)

    streamed: list[Json] = []
    async with client.get(f"/v1/customers/{posted['customer_id']}/events",
                          headers={**keys("agent"), "Last-Event-ID": "0-0"}) as stream:
        text = ""
        async with asyncio.timeout(5):
            while len(streamed) < len(receiver.got):
                text += (await stream.content.readany()).decode()
                *blocks, text = text.split("\n\n")
                streamed += [json.loads(line[6:]) for block in blocks
                             for line in block.splitlines()
                             if line.startswith("data: ") and "\nid: " in f"\n{block}"]
    delivered = [r.json()["data"] for r in receiver.got]
    assert [d["type"] for d in delivered] == ["turn.appended", "handoff.requested"]
    assert delivered == streamed
    assert delivered[1]["record"]["id"] == ho["id"]


async def test_a_subscription_receives_only_the_event_types_it_asked_for(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    await subscribe(client, keys, receiver.url, ["handoff.requested", "handoff.cancelled"])
    await chat(client, keys, turn("t1", "Hello"))
    ho = await ok(client, "POST", "/v1/handoffs", keys("bot"), HANDOFF_BODY, status=201)
    await ok(client, "POST", f"/v1/handoffs/{ho['id']}/cancel", keys("bot"), {"note": "gone"})
    await receiver.wait_for(2)
    await settled(redis_sync)

    assert [r.json()["type"] for r in receiver.got] == ["handoff.requested",
                                                        "handoff.cancelled"]
    assert {r.json()["data"]["record"]["id"] for r in receiver.got} == {ho["id"]}


async def test_a_retried_post_sends_no_second_webhook(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    await subscribe(client, keys, receiver.url, ["turn.appended"])
    await chat(client, keys, turn("t1", "Hello"), turn("t2", "Anyone?"))
    again = await chat(client, keys, turn("t1", "Hello"), turn("t2", "Anyone?"))
    await receiver.wait_for(2)
    await settled(redis_sync)

    assert again["duplicates"] == 2
    assert sorted(r.json()["data"]["record"]["id"] for r in receiver.got) == ["t1", "t2"]


# -- the receiver that never takes it ------------------------------------------------------------


async def test_a_receiver_that_always_fails_lands_the_event_in_the_dead_letters(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    receiver.always = 500
    hook = await subscribe(client, keys, receiver.url, ["turn.appended"])
    await chat(client, keys, turn("t1", "Hello"))
    got = await receiver.wait_for(3)
    await settled(redis_sync)

    page = await ok(client, "GET", f"/v1/admin/webhooks/{hook['id']}/dead-letters",
                    keys("admin"))
    (letter,) = page["items"]
    assert letter["id"] == got[0].headers["Handoff-Delivery-Id"]
    assert (letter["attempts"], letter["last_status"], letter["type"]) == (3,
                                                                          500, "turn.appended")
    assert len(got) == 3 and outcomes(client)["dead"] == 1
    assert "Hello" not in json.dumps(letter), "the list shows what failed, not customer data"

    receiver.always = None
    queued = await ok(client, "POST", f"/v1/admin/webhooks/{hook['id']}/dead-letters/"
                      f"{letter['id']}/redeliver", keys("admin"), status=202)
    assert queued == {"id": letter["id"], "webhook_id": hook["id"], "status": "queued"}
    await receiver.wait_for(4)
    await settled(redis_sync)
    assert receiver.got[-1].headers["Handoff-Delivery-Id"] == letter["id"]
    assert receiver.got[-1].headers["Handoff-Attempt"] == "1"
    assert receiver.got[-1].body == got[0].body
    assert len(receiver.acknowledged()) == 1
    empty = await ok(client, "GET", f"/v1/admin/webhooks/{hook['id']}/dead-letters",
                     keys("admin"))
    assert empty == {"items": [], "next": None}
    again = await call(client, "POST", f"/v1/admin/webhooks/{hook['id']}/dead-letters/"
                       f"{letter['id']}/redeliver", headers=keys("admin"))
    assert_problem(again, 404)


async def test_dead_letters_page_by_cursor_newest_event_first(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**{**FAST, "webhook_max_attempts": 1})
    receiver.always = 410
    hook = await subscribe(client, keys, receiver.url, ["turn.appended"])
    for n in range(3):
        await chat(client, keys, turn(f"t{n}", "Hello"))
    await receiver.wait_for(3)
    await settled(redis_sync)

    path = f"/v1/admin/webhooks/{hook['id']}/dead-letters"
    first = await ok(client, "GET", f"{path}?limit=2", keys("admin"))
    rest = await ok(client, "GET", f"{path}?limit=2&before={first['next']}", keys("admin"))
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert rest["next"] is None
    assert_problem(await call(client, "GET", f"{path}?before=nonsense", headers=keys("admin")),
                   422)


# -- restarts and several processes -------------------------------------------------------------


async def test_a_restart_between_retries_loses_no_delivery(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    # The first process fails once, then stops before the retry (a second away) is due.
    slow_retry = {**FAST, "webhook_backoff_seconds": 2.0, "webhook_backoff_max_seconds": 2.0}
    first = await make_client(**slow_retry)
    receiver.plan = [503]
    await subscribe(first, keys, receiver.url, ["turn.appended"])
    await chat(first, keys, turn("t1", "Hello"))
    await receiver.wait_for(1)
    await until(lambda: any(redis_sync.hget(k, "attempts") == b"1"
                            for k in redis_sync.scan_iter(DELIVERIES)))
    await first.close()

    second = await make_client(**slow_retry)
    got = await receiver.wait_for(2)
    await settled(redis_sync)

    assert [r.status for r in got] == [503, 200]
    assert got[0].headers["Handoff-Delivery-Id"] == got[1].headers["Handoff-Delivery-Id"]
    assert outcomes(second)["delivered"] == 1


async def test_a_process_that_stops_mid_send_leaves_a_claim_another_process_takes_over(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    # The lease is at least the timeout plus a second: 3 s here, and the first process is
    # stopped well within its 2 s timeout.
    short_lease = {**FAST, "webhook_timeout_seconds": 2.0, "webhook_lease_seconds": 0.5}
    first = await make_client(**short_lease)
    receiver.plan = [None]  # holds the first attempt: the sender never hears back
    await subscribe(first, keys, receiver.url, ["turn.appended"])
    await chat(first, keys, turn("t1", "Hello"))
    await receiver.wait_for(1)
    await first.close()  # cancelled mid-send: its claim is never settled

    second = await make_client(**short_lease)
    got = await receiver.wait_for(2)
    await settled(redis_sync)

    assert got[0].headers["Handoff-Delivery-Id"] == got[1].headers["Handoff-Delivery-Id"]
    # Attempt 1 again: the first process never got to record its attempt.
    assert [r.headers["Handoff-Attempt"] for r in got] == ["1", "1"]
    assert got[1].status == 200
    assert outcomes(second)["delivered"] == 1


async def test_two_processes_deliver_each_event_once(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    one, two = await make_client(**FAST), await make_client(**FAST)
    await subscribe(one, keys, receiver.url, ["turn.appended"])
    for n in range(20):
        await chat(one if n % 2 else two, keys, turn(f"t{n}", f"turn {n}"))
    await receiver.wait_for(20)
    await settled(redis_sync)
    await asyncio.sleep(0.2)  # room for a double send to show up, if there were one

    deliveries = [r.headers["Handoff-Delivery-Id"] for r in receiver.got]
    assert len(deliveries) == len(set(deliveries)) == 20
    assert outcomes(one)["delivered"] + outcomes(two)["delivered"] == 20


async def test_a_new_subscription_reaches_every_process_without_waiting_for_its_cache(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    one, two = await make_client(**FAST), await make_client(**FAST)
    await chat(two, keys, turn("t0", "before any subscription"))  # `two` remembers: none
    outbox = two.app[DEPS].outbox
    name = two.app[DEPS].store.webhooks.subscriptions_name("acme")
    assert outbox.remembered.get(name) == ()

    await subscribe(one, keys, receiver.url, ["turn.appended"])
    # Well inside the 5 s the list would otherwise be kept.
    await until(lambda: outbox.remembered.get(name) is None, seconds=2.0)
    await chat(two, keys, turn("t1", "after"))
    await receiver.wait_for(1)
    await settled(redis_sync)

    assert [r.json()["data"]["record"]["id"] for r in receiver.got] == ["t1"]


# -- managing subscriptions ----------------------------------------------------------------------


async def test_no_subscription_queues_nothing(client: Client, keys: Keys,
                                              redis_sync: redis.Redis) -> None:
    await chat(client, keys, turn("t1", "Hello"))
    await ok(client, "POST", "/v1/handoffs", keys("bot"), HANDOFF_BODY, status=201)

    assert not list(redis_sync.scan_iter("*:wh:*"))
    assert outcomes(client)["queued"] == 0


async def test_the_secret_is_shown_once_and_rotating_it_signs_later_deliveries_anew(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    hook = await subscribe(client, keys, receiver.url, ["turn.appended"])
    listed = await ok(client, "GET", "/v1/admin/webhooks", keys("admin"))
    assert [h["id"] for h in listed["items"]] == [hook["id"]]
    assert "secret" not in listed["items"][0]
    assert hook["secret"] not in json.dumps(listed)

    rotated = await ok(client, "POST", f"/v1/admin/webhooks/{hook['id']}/rotate",
                       keys("admin"))
    assert rotated["secret"] != hook["secret"] and rotated["secret_rotated_at"]
    await chat(client, keys, turn("t1", "Hello"))
    (got,) = await receiver.wait_for(1)
    await settled(redis_sync)
    verify = documented_verify()
    assert verify([rotated["secret"]], got.headers["Handoff-Signature"], got.body)
    assert not verify([hook["secret"]], got.headers["Handoff-Signature"], got.body)


async def test_deleting_a_subscription_drops_its_queued_deliveries_and_dead_letters(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client, hook, _ = await dead_letters_of(make_client, keys, receiver, redis_sync,
                                            turn("t1", "Hello"))

    removed = await ok(client, "DELETE", f"/v1/admin/webhooks/{hook['id']}", keys("admin"))
    assert removed["id"] == hook["id"] and "secret" not in removed
    assert (await ok(client, "GET", "/v1/admin/webhooks", keys("admin")))["items"] == []
    assert not list(redis_sync.scan_iter(DELIVERIES))
    assert_problem(await call(client, "GET", f"/v1/admin/webhooks/{hook['id']}/dead-letters",
                              headers=keys("admin")), 404)
    assert_problem(await call(client, "DELETE", f"/v1/admin/webhooks/{hook['id']}",
                              headers=keys("admin")), 404)


async def test_erasing_a_customer_removes_the_deliveries_that_carry_its_data(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client, hook, posted = await dead_letters_of(make_client, keys, receiver, redis_sync,
                                                 turn("t1", "Hello"),
                                                 turn("t2", "My card is lost"))
    path = f"/v1/admin/webhooks/{hook['id']}/dead-letters"
    assert len((await ok(client, "GET", path, keys("admin")))["items"]) == 2
    for key in redis_sync.scan_iter(DELIVERIES):
        assert 0 < redis_sync.pttl(key) <= 30 * 86400 * 1000, "kept no longer than retention"

    erased = await ok(client, "DELETE", f"/v1/customers/{ref(posted['customer_id'])}",
                      keys("admin"))

    assert erased["webhook_deliveries"] == 2
    assert (await ok(client, "GET", path, keys("admin")))["items"] == []
    subscriptions = redis_keys.webhooks("acme")
    assert not [k for k in redis_sync.scan_iter(subscriptions.removesuffix("subs") + "*")
                if k.decode() != subscriptions]


BAD_BODIES: dict[str, tuple[Json, str]] = {
    "an ftp URL": ({"url": "ftp://desk.example.com/x", "events": ["*"]}, "url"),
    "a javascript URL": ({"url": "javascript:alert(1)", "events": ["*"]}, "url"),
    "a URL without a host": ({"url": "https:///hooks", "events": ["*"]}, "url"),
    "a relative URL": ({"url": "/hooks", "events": ["*"]}, "url"),
    "credentials in the URL": ({"url": "https://user:pw@desk.example.com/", "events": ["*"]},
                               "url"),
    "a port out of range": ({"url": "https://desk.example.com:99999/", "events": ["*"]},
                            "url"),
    "a space in the URL": ({"url": "https://desk.example.com/a b", "events": ["*"]}, "url"),
    "a URL of 3000 characters": ({"url": "https://desk.example.com/" + "a" * 3000,
                                  "events": ["*"]}, "url"),
    "loopback": ({"url": "http://127.0.0.1:8080/hooks", "events": ["*"]}, "url"),
    "localhost": ({"url": "http://localhost/hooks", "events": ["*"]}, "url"),
    "cloud metadata": ({"url": "http://169.254.169.254/latest", "events": ["*"]}, "url"),
    "a private address": ({"url": "https://10.0.0.7/hooks", "events": ["*"]}, "url"),
    "IPv6 loopback": ({"url": "http://[::1]/hooks", "events": ["*"]}, "url"),
    "mapped IPv4 loopback": ({"url": "http://[::ffff:127.0.0.1]/", "events": ["*"]}, "url"),
    "6to4 wrapping loopback": ({"url": "http://[2002:7f00:1::]/", "events": ["*"]}, "url"),
    "NAT64 wrapping metadata": ({"url": "http://[64:ff9b::a9fe:a9fe]/", "events": ["*"]},
                                "url"),
    "IPv4-compatible loopback": ({"url": "http://[::127.0.0.1]/", "events": ["*"]}, "url"),
    "IPv4-translated loopback": ({"url": "http://[::ffff:0:7f00:1]/", "events": ["*"]}, "url"),
    "unspecified address": ({"url": "http://0.0.0.0:8080/", "events": ["*"]}, "url"),
    **{f"loopback spelled {spelling}": ({"url": f"http://{spelling}:8080/", "events": ["*"]},
                                        "url")
       for spelling in ("127.1", "2130706433", "0177.0.0.1", "127.000.000.001", "0x7f.0.0.1",
                        "0X7F000001", "0")},
    "local-use NAT64": ({"url": "http://[64:ff9b:1::808:808]/", "events": ["*"]}, "url"),
    "localhost with a dot": ({"url": "http://LOCALHOST./", "events": ["*"]}, "url"),
    "an unknown event type": ({"url": "https://desk.example.com/", "events": ["turn.deleted"]},
                              "events"),
    "no event types": ({"url": "https://desk.example.com/", "events": []}, "events"),
    "events as a string": ({"url": "https://desk.example.com/", "events": "*"}, "events"),
    "no URL": ({"events": ["*"]}, "url"),
    "an unknown field": ({"url": "https://desk.example.com/", "events": ["*"],
                          "secret": "mine"}, "secret"),
    "a control character in the description": (
        {"url": "https://desk.example.com/", "events": ["*"], "description": "a\nb"},
        "description"),
    "a card number in the description": (
        {"url": "https://desk.example.com/", "events": ["*"], "description": PAN},
        "description"),
}


@pytest.mark.parametrize(("body", "loc"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_a_bad_subscription_is_unprocessable_and_changes_nothing(
        body: Json, loc: str, client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    before = snapshot(redis_sync)
    answer = await call(client, "POST", "/v1/admin/webhooks", headers=keys("admin"),
                        json_body=body)
    problem = assert_problem(answer, 422)
    assert any(e["loc"][0] == loc for e in problem["errors"]), problem
    assert_unchanged(before, snapshot(redis_sync))


# Loopback as HTTP clients have handed it to the C library unchecked (aiohttp before 3.14 took
# any host of digits and dots as an address), and a name that resolves to it.
LOOPBACK = ("127.1", "2130706433", "0177.0.0.1", "127.000.000.001", "0x7f.0.0.1", "0",
            "127.0.0.1.", "localhost", "[::ffff:127.0.0.1]")


async def test_a_loopback_subscription_made_while_allowed_gets_nothing_once_refused(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    # Subscribed while private networks were allowed, as a store written before the check
    # knew these spellings would hold them.
    allowed = await make_client(**{**FAST, "webhook_max_attempts": 1})
    port = urlsplit(receiver.url).port
    hooks = {spelling: await subscribe(allowed, keys, f"http://{spelling}:{port}/hooks",
                                       ["turn.appended"])
             for spelling in LOOPBACK}
    await chat(allowed, keys, turn("t0", "while allowed"))
    await settled(redis_sync)
    reached = {r.headers["Handoff-Webhook-Id"] for r in receiver.got}
    assert {hooks["0x7f.0.0.1"]["id"], hooks["localhost"]["id"]} <= reached, \
        "these URLs do lead to the receiver on this machine"
    await allowed.close()
    before = len(receiver.got)

    refused = await make_client(**{**FAST, "webhook_allow_private_networks": False,
                                   "webhook_max_attempts": 1})
    await chat(refused, keys, turn("t1", "once refused"), conversation="web-9c1d")
    await settled(redis_sync)

    assert len(receiver.got) == before, [r.headers["Host"] for r in receiver.got[before:]]
    for spelling, hook in hooks.items():
        page = await ok(refused, "GET", f"/v1/admin/webhooks/{hook['id']}/dead-letters",
                        keys("admin"))
        newest = page["items"][0]
        assert newest["last_status"] is None, spelling
        error = newest["last_error"]
        assert re.search(r"is not a public address|resolves to no public address", error), error


async def test_the_sending_connection_itself_refuses_loopback_whatever_checked_the_url(
        settings: Settings, receiver: Receiver) -> None:
    # Under the URL checks, the connector checks the address each socket is about to connect
    # to: what it holds however the host was spelled, and whoever parsed it.
    sender = Sender(settings)
    try:
        for url in (receiver.url, receiver.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")):
            with pytest.raises(aiohttp.ClientConnectorError, match="not a public address"):
                async with sender.session.post(url, data=b"{}"):
                    pass
    finally:
        await sender.close()
    assert receiver.got == []


def test_no_aiohttp_that_connects_to_numeric_hosts_unchecked_can_be_installed() -> None:
    # aiohttp before 3.14 took any host of digits and dots as an address, with no lookup the
    # resolver could check: the connector's socket check above would be the only guard left.
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    [aiohttp_requirement] = [Requirement(r) for r in project["project"]["dependencies"]
                             if Requirement(r).name == "aiohttp"]
    allowed = aiohttp_requirement.specifier
    assert not any(allowed.contains(v) for v in ("3.12.15", "3.13.0", "3.13.9")), allowed
    assert allowed.contains(aiohttp.__version__), f"the tests run {aiohttp.__version__}"


async def test_a_tenant_has_at_most_the_configured_number_of_subscriptions(
        make_client: AppFactory, keys: Keys, redis_sync: redis.Redis) -> None:
    client = await make_client(webhook_max_subscriptions=2)
    for n in range(2):
        await subscribe(client, keys, f"https://desk{n}.example.com/", ["*"])
    before = snapshot(redis_sync)
    answer = await call(client, "POST", "/v1/admin/webhooks", headers=keys("admin"),
                        json_body={"url": "https://desk9.example.com/", "events": ["*"]})
    assert_problem(answer, 409)
    assert_unchanged(before, snapshot(redis_sync))


async def test_another_tenants_admin_finds_no_subscription_and_changes_nothing(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client, hook, _ = await dead_letters_of(make_client, keys, receiver, redis_sync,
                                            turn("t1", "Hello"))
    (letter,) = (await ok(client, "GET", f"/v1/admin/webhooks/{hook['id']}/dead-letters",
                          keys("admin")))["items"]
    before = snapshot(redis_sync)

    globex = keys("admin", "globex")
    assert await ok(client, "GET", "/v1/admin/webhooks", globex) == {"items": [], "next": None}
    base = f"/v1/admin/webhooks/{hook['id']}"
    for method, path in (("DELETE", base), ("POST", f"{base}/rotate"),
                         ("GET", f"{base}/dead-letters"),
                         ("POST", f"{base}/dead-letters/{letter['id']}/redeliver")):
        assert_problem(await call(client, method, path, headers=globex), 404)
    assert_unchanged(before, snapshot(redis_sync))


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
async def test_only_admins_manage_webhooks(role: str, client: Client, keys: Keys,
                                           redis_sync: redis.Redis) -> None:
    hook = await subscribe(client, keys, "https://desk.example.com/", ["handoff.expired"])
    before = snapshot(redis_sync)
    base = f"/v1/admin/webhooks/{hook['id']}"
    for method, path, body in (
            ("GET", "/v1/admin/webhooks", None),
            ("POST", "/v1/admin/webhooks", {"url": "https://x.example.com/", "events": ["*"]}),
            ("DELETE", base, None), ("POST", f"{base}/rotate", None),
            ("GET", f"{base}/dead-letters", None),
            ("POST", f"{base}/dead-letters/dlv_{'0' * 26}/redeliver", None)):
        answer = await call(client, method, path, headers=keys(role), json_body=body)
        assert_problem(answer, 403)
    assert_unchanged(before, snapshot(redis_sync))


# -- the hard parts, alone ----------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap_with_half_of_it_random() -> None:
    def bounds(failures: int) -> tuple[float, float]:
        return (backoff_seconds(failures, base=5, cap=3600, rand=lambda: 0.0),
                backoff_seconds(failures, base=5, cap=3600, rand=lambda: 1.0))

    assert [bounds(n) for n in (1, 2, 3)] == [(2.5, 5.0), (5.0, 10.0), (10.0, 20.0)]
    assert bounds(20) == bounds(200) == (1800.0, 3600.0)


def test_the_documented_snippet_refuses_old_and_malformed_signatures() -> None:
    verify = documented_verify()
    body = b'{"id":"evt_1"}'
    now = int(time.time())
    assert verify(["s1"], signature("s1", now, body), body)
    assert verify(["old", "s1"], signature("s1", now, body), body)
    assert not verify(["s1"], signature("s1", now - 3600, body), body)
    assert not verify(["s1"], "v1=" + signature("s1", now, body).split("v1=")[1], body)
    assert not verify(["s1"], "t=abc,v1=00", body)
    assert not verify(["s1"], "", body)

