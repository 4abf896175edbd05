"""Nobody honest is locked out: limits slow down whoever guesses, never everyone who shares an
address or an API key with them.

A contact centre reaches handoff through one proxy and one IVR key: a misconfigured bot sending
a wrong key, or callers mistyping their continuation codes, must not turn away the next valid key
or the next right code. Behind a trusted proxy each client is told apart by `X-Forwarded-For`,
and nobody else can choose the address they are counted under.

Real server, real Redis, real TCP: a second source address is a client socket bound to another
loopback address (127.0.0.2), and a trusted proxy is the test itself connecting from 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient

from handoff.api.remote import MAX_HOPS, forwarded_client
from handoff.kernel.settings import Settings
from tests.conftest import AppFactory, Keys
from tests.test_bounded_cost import command_calls
from tests.test_data_protection import from_address, within_one_minute

Client = TestClient[Any, Any]
Json = dict[str, Any]
# The test connects from 127.0.0.1: as far as the server knows, that is the proxy in front.
PROXY = [ipaddress.ip_network("127.0.0.1/32")]
ELSEWHERE = "127.0.0.2"
# What deciding on a key may cost in Redis: its record, its "last used" note, failure counters,
# block notices. Background work (sweeps, webhook polls, the invalidation follower) is not this.
AUTH_COMMANDS = ("hgetall", "hget", "hset", "incr", "pexpire", "xadd")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background sweeps or polls: their Redis commands would blur the counts."""
    return settings.model_copy(update={"sweep_seconds": 3600.0, "webhook_poll_seconds": 3600.0})


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def forwarded_for(*hops: str) -> dict[str, str]:
    return {"X-Forwarded-For": ", ".join(hops)}




async def answer(client: Client | aiohttp.ClientSession, path: str, headers: dict[str, str]
                 ) -> tuple[int, str | None]:
    """The status and Retry-After of a GET."""
    async with client.get(path, headers=headers) as r:
        await r.read()
        return r.status, r.headers.get("Retry-After")


def auth_commands(r: redis.Redis) -> Counter[str]:
    calls = command_calls(r)
    return Counter({name: calls[name] for name in AUTH_COMMANDS})


# -- wrong keys ------------------------------------------------------------------------------


async def test_a_bot_sending_wrong_keys_slows_down_wrong_keys_only_and_every_valid_key_gets_in(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(auth_failures_per_minute=5)
    await within_one_minute(5)

    wrong = [await answer(app, "/v1/handoffs", bearer(f"hk_wrong_{n}")) for n in range(8)]

    assert [s for s, _ in wrong] == [401] * 5 + [429] * 3
    assert all(0 < int(str(retry)) <= 60 for s, retry in wrong if s == 429)
    # Everyone else behind the same address: every tenant's valid keys still work.
    assert (await answer(app, "/v1/handoffs", keys("agent")))[0] == 200
    assert (await answer(app, "/v1/handoffs", keys("agent", "globex")))[0] == 200
    assert (await answer(app, "/v1/admin/keys", keys("admin")))[0] == 200
    # And the bot is still slowed down, whether it repeats a wrong key or tries a new one.
    for secret in ("hk_wrong_0", "hk_wrong_new"):
        status, retry = await answer(app, "/v1/handoffs", bearer(secret))
        assert status == 429 and 0 < int(str(retry)) <= 60


async def test_a_blocked_address_costs_redis_nothing_for_a_known_wrong_key_and_a_valid_key_no_more(
        make_client: AppFactory, keys: Keys, redis_sync: redis.Redis) -> None:
    app = await make_client(auth_failures_per_minute=3)
    await within_one_minute(5)
    await answer(app, "/v1/handoffs", keys("agent"))  # its record is now remembered
    before = auth_commands(redis_sync)
    assert (await answer(app, "/v1/handoffs", keys("agent")))[0] == 200
    valid_unblocked = auth_commands(redis_sync) - before

    for _ in range(4):
        await answer(app, "/v1/handoffs", bearer("hk_misconfigured"))
    before = auth_commands(redis_sync)
    assert (await answer(app, "/v1/handoffs", keys("agent")))[0] == 200
    valid_blocked = auth_commands(redis_sync) - before
    before = auth_commands(redis_sync)
    repeated = [(await answer(app, "/v1/handoffs", bearer("hk_misconfigured")))[0]
                for _ in range(20)]
    wrong_blocked = auth_commands(redis_sync) - before

    assert valid_blocked == valid_unblocked
    assert repeated == [429] * 20
    assert not wrong_blocked, f"a known wrong key from a blocked address asked Redis: " \
                              f"{wrong_blocked}"


# -- who the client is -----------------------------------------------------------------------


async def chat_customer(app: Client, keys: Keys) -> str:
    chat = f"visitor-{uuid.uuid4().hex[:10]}"
    r = await app.post("/v1/conversations/web-1/turns", headers=keys("bot"), json={
        "customer": {"identities": [{"kind": "chat", "value": chat}]}, "channel": "chat",
        "turns": [{"id": "t1", "role": "customer", "text": "hello",
                   "ts": "2026-11-23T10:02:00Z"}]})
    assert r.status == 200, await r.text()
    customer: str = (await r.json())["customer_id"]
    return customer


async def agent_reads(app: Client | aiohttp.ClientSession, keys: Keys, customer: str,
                      headers: dict[str, str]) -> None:
    async with app.get(f"/v1/customers/{customer}/context",
                       headers={**keys("agent"), **headers}) as r:
        assert r.status == 200, await r.text()


async def audited_addresses(app: Client, keys: Keys, customer: str) -> list[str]:
    r = await app.get(f"/v1/admin/audit?customer={customer}", headers=keys("admin"))
    assert r.status == 200, await r.text()
    return [entry["address"] for entry in (await r.json())["items"]]


async def test_behind_a_trusted_proxy_two_clients_are_told_apart_by_x_forwarded_for(
        make_client: AppFactory, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    app = await make_client(auth_failures_per_minute=3, trusted_proxies=PROXY)
    await within_one_minute(5)
    bot, desk = forwarded_for("203.0.113.7"), forwarded_for("198.51.100.9")

    misconfigured = [(await answer(app, "/v1/handoffs", {**bearer(f"hk_bad_{n}"), **bot}))[0]
                     for n in range(4)]
    other = await answer(app, "/v1/handoffs", {**bearer("hk_typo"), **desk})
    customer = await chat_customer(app, keys)
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        await agent_reads(app, keys, customer, desk)

    assert misconfigured == [401] * 3 + [429]
    assert other[0] == 401, "the other client behind the proxy is not the misconfigured one"
    assert await audited_addresses(app, keys, customer) == ["198.51.100.9"]
    remotes = [r.fields["remote"] for r in caplog.records  # type: ignore[attr-defined]
               if r.name == "handoff.access"]
    assert remotes and set(remotes) == {"198.51.100.9"}


async def test_nobody_chooses_the_address_they_are_counted_under(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(auth_failures_per_minute=3, trusted_proxies=PROXY)
    await within_one_minute(10)
    honest = "198.51.100.9"

    # From a peer that is no trusted proxy, X-Forwarded-For is whatever it chose to send.
    async with from_address(app, ELSEWHERE) as forger:
        direct = [(await answer(forger, "/v1/handoffs",
                                {**bearer("hk_guess"), **forwarded_for(f"192.0.2.{n}")}))[0]
                  for n in range(4)]
        customer = await chat_customer(app, keys)
        await agent_reads(forger, keys, customer, forwarded_for(honest))
    # Through the proxy, only the hop the proxy added is believed; the ones left of it are the
    # client's own words.
    relayed = [(await answer(app, "/v1/handoffs",
                             {**bearer("hk_guess"), **forwarded_for(f"192.0.2.{n}", honest,
                                                                    "203.0.113.50")}))[0]
               for n in range(4)]

    assert direct == [401] * 3 + [429]
    assert relayed == [401] * 3 + [429]
    assert await audited_addresses(app, keys, customer) == [ELSEWHERE]
    # The client both of them claimed to be was never blocked.
    assert (await answer(app, "/v1/handoffs", {**bearer("hk_typo"), **forwarded_for(honest)})
            )[0] == 401
    assert (await answer(app, "/v1/handoffs", {**keys("agent"), **forwarded_for(honest)})
            )[0] == 200


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(("peer", "headers", "client"), [
    ("10.0.0.2", ["203.0.113.7"], "203.0.113.7"),
    ("10.0.0.2", ["1.1.1.1, 203.0.113.7, 10.0.0.9"], "203.0.113.7"),  # two proxies in front
    ("10.0.0.2", ["1.1.1.1", "203.0.113.7"], "203.0.113.7"),  # the header sent twice
    ("10.0.0.2", ["203.0.113.7:5123"], "203.0.113.7"),  # with a port, as some balancers write
    ("10.0.0.2", ["[2001:db8::7]:443"], "2001:db8::7"),
    ("fd00::2", ["2001:db8::7"], "2001:db8::7"),
    ("::ffff:10.0.0.2", ["203.0.113.7"], "203.0.113.7"),  # IPv4 on a dual-stack socket
    ("203.0.113.1", ["1.1.1.1"], "203.0.113.1"),  # not a trusted proxy: header ignored
    ("10.0.0.2", [], "10.0.0.2"),  # a trusted peer that forwarded nobody
    ("10.0.0.2", [""], "10.0.0.2"),
    ("10.0.0.2", ["unknown"], "10.0.0.2"),  # garbage names nobody but the proxy
    ("10.0.0.2", ["1.1.1.1, not-an-address, 10.0.0.9"], "10.0.0.9"),
    ("10.0.0.2", ["203.0.113.7, <script>"], "10.0.0.2"),
    ("10.0.0.2", ["10.1.1.1, 10.0.0.9"], "10.1.1.1"),  # every hop trusted: the furthest one
])
def test_the_client_is_the_right_most_forwarded_hop_that_no_trusted_proxy_added(
        peer: str, headers: list[str], client: str) -> None:
    assert forwarded_client(peer, TRUSTED, headers) == client


def test_a_header_of_thousands_of_trusted_hops_is_read_only_so_far() -> None:
    hops = ", ".join(["203.0.113.7", *(f"10.0.{n // 250}.{n % 250}" for n in range(2000))])
    assert forwarded_client("10.0.0.2", TRUSTED, [hops]).startswith("10.")
    assert MAX_HOPS < 2000


# -- wrong continuation codes ----------------------------------------------------------------


def caller(n: int) -> str:
    return f"+1555010{n:04d}"


def redeem_body(conversation_id: str, phone: str) -> Json:
    return {"customer": {"identities": [{"kind": "phone", "value": phone}]},
            "conversation_id": conversation_id, "channel": "voice", "source": "acme-ivr"}


def wrong_codes(right: str) -> Iterator[str]:
    """Every other 6-digit code, in an order nobody would guess."""
    n = int(right)
    for step in range(1, 1_000_000):
        yield f"{(n + step * 7919) % 1_000_000:06d}"


async def code_for_a_chat(app: Client, keys: Keys) -> Json:
    r = await app.post("/v1/handoffs", headers=keys("bot"), json={
        "customer": {"identities": [{"kind": "chat", "value": f"v-{uuid.uuid4().hex[:10]}"}]},
        "conversation_id": f"web-{uuid.uuid4().hex[:8]}", "channel": "chat",
        "reason": "customer_request", "continuation": True})
    assert r.status == 201, await r.text()
    created: Json = await r.json()
    return created


async def redeem(app: Client | aiohttp.ClientSession, headers: dict[str, str], code: str,
                 conversation_id: str, phone: str) -> tuple[int, str | None, Json]:
    async with app.post(f"/v1/continuations/{code}/redeem", headers=headers,
                        json=redeem_body(conversation_id, phone)) as r:
        body: Json = await r.json(content_type=None)
        return r.status, r.headers.get("Retry-After"), body


async def test_ten_callers_who_each_mistype_their_code_once_do_not_lock_out_the_eleventh(
        client: Client, keys: Keys) -> None:
    chats = [await code_for_a_chat(client, keys) for _ in range(11)]
    await within_one_minute(5)

    typos = [await redeem(client, keys("ivr"), next(wrong_codes(chat["continuation_code"])),
                          f"CA-{n}", caller(n)) for n, chat in enumerate(chats[:10])]
    status, _, joined = await redeem(client, keys("ivr"), chats[10]["continuation_code"],
                                     "CA-10", caller(10))

    assert [s for s, _, _ in typos] == [404] * 10
    assert status == 200, joined
    assert joined["customer_id"] == chats[10]["customer_id"]
    # and the ten who mistyped get in on their next try
    for n, chat in enumerate(chats[:10]):
        assert (await redeem(client, keys("ivr"), chat["continuation_code"], f"CA-{n}",
                             caller(n)))[0] == 200


async def test_a_caller_who_keeps_guessing_is_stopped_on_each_call_and_then_by_number(
        client: Client, keys: Keys) -> None:
    target = await code_for_a_chat(client, keys)
    honest = await code_for_a_chat(client, keys)
    guesses = wrong_codes(target["continuation_code"])
    guesser = caller(666)

    calls = []
    for call in range(3):  # calls back each time the IVR stops listening
        calls.append([await redeem(client, keys("ivr"), next(guesses), f"CA-guess-{call}",
                                   guesser) for _ in range(4)])

    statuses = [[s for s, _, _ in attempts] for attempts in calls]
    assert statuses[:2] == [[404, 404, 404, 429]] * 2, "three wrong codes a call"
    assert statuses[2] == [429] * 4, "six wrong codes a number, over all its calls"
    for status, retry, problem in (a for attempts in calls for a in attempts):
        if status == 429:
            assert 60 < int(str(retry)) <= 900, "until the codes it tried have expired"
            assert problem["status"] == 429
    assert "caller" in calls[2][0][2]["detail"]
    # Even the right code stays locked for that number, on a new call.
    assert (await redeem(client, keys("ivr"), target["continuation_code"], "CA-guess-3",
                         guesser))[0] == 429
    # Everyone else is unaffected: same key, same address.
    status, _, joined = await redeem(client, keys("ivr"), honest["continuation_code"],
                                     "CA-honest", caller(1))
    assert status == 200 and joined["customer_id"] == honest["customer_id"]


async def test_guessing_spread_over_many_calls_and_numbers_stops_at_the_keys_ceiling(
        client: Client, keys: Keys) -> None:
    chat = await code_for_a_chat(client, keys)
    ceiling = Settings().redeem_attempts_per_minute
    # 1,000 calls a minute through one IVR key with 5% of codes mistyped: 50 wrong a minute.
    assert ceiling >= 4 * 50, "the shipped ceiling must let a busy contact centre through"
    other_ivr = await client.post("/v1/admin/keys", headers=keys("admin"),
                                  json={"role": "ivr", "name": "second-ivr"})
    other_secret = (await other_ivr.json())["key"]
    guesses = wrong_codes(chat["continuation_code"])
    await within_one_minute(20)

    # One wrong code per call, each from a new number: no call or caller limit ever applies.
    spread = [(await redeem(client, keys("ivr"), next(guesses), f"CA-{n}", caller(n)))[0]
              for n in range(ceiling)]
    status, retry, problem = await redeem(client, keys("ivr"), next(guesses), "CA-next",
                                          caller(ceiling))

    assert spread == [404] * ceiling
    assert status == 429 and 0 < int(str(retry)) <= 60
    assert "key" in problem["detail"]
    # The code's owner, calling through another key from another address, still gets in.
    async with from_address(client, ELSEWHERE) as elsewhere:
        status, _, joined = await redeem(elsewhere, bearer(other_secret),
                                         chat["continuation_code"], "CA-real", caller(9999))
    assert status == 200, joined
    assert joined["customer_id"] == chat["customer_id"]
