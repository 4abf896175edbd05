"""Appending a turn and reading the brief cost the same whatever the history length, and the brief
is cacheable: the last N turns, an ETag that moves only when the context does."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.cluster
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from handoff.kernel import logs
from handoff.kernel.settings import Settings
from handoff.store.multiplex import Multiplexed
from tests import test_adapter_amazon_connect as connect
from tests import test_adapter_dialogflow_cx as dialogflow
from tests import test_adapter_lex_v2 as lex
from tests import test_adapter_rasa as rasa
from tests import test_adapter_twilio_voice as twilio
from tests.conftest import AppFactory, Keys, RedisServer
from tests.scenario import ok

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


# -- Redis round trips and commands per request -------------------------------------------------

# What one request costs in Redis on each hot route: (round trips, commands), warm (the API
# key, the customer's index entries and the scripts already known, as on every request of a
# conversation after its first). A command is what the service sends: an EVALSHA is one, whatever
# its script runs. A round trip is one write of the shared connection, which carries every
# command issued in the same event-loop iteration. This table is the one place to change: a
# change that adds a round trip or a command fails below until it is written down here.
COSTS: dict[str, tuple[int, int]] = {
    # route                                   round trips, commands
    "turn append":                            (1, 1),
    # The outbox note rides with the write; raising is one script more (see docs/alerts.md).
    "turn append raising a risk alert":       (2, 3),
    "turn append, its kind's alert open":     (1, 2),
    # Nothing cached and no ETag to compare: built at once, the audit entry in the same trip.
    "brief, first read":                      (1, 12),
    "brief, after a new turn":                (2, 14),
    "brief, unchanged since the last read":   (1, 6),
    "brief answered 304":                     (1, 6),
    # The tenant index with the script, then the customer's slot (no re-read of the record).
    "hand-off create":                        (2, 3),
    # The claim (its script reads the hand-off itself); the customer's slot told, the brief's
    # reads after it; the brief's hand-offs with the audit entry and its effort figures.
    "hand-off accept":                        (3, 16),
    "Dialogflow CX webhook":                  (2, 2),
    "Lex V2 code hook":                       (2, 2),
    "Rasa event":                             (2, 2),
    "Twilio voice, incoming call":            (3, 4),
    "Amazon Connect identify":                (4, 12),
    "Amazon Connect turn":                    (1, 1),
}


@dataclass
class Traffic:
    """What one request sent to Redis: its commands, and the writes that carried them."""

    commands: list[str] = field(default_factory=list)
    writes: set[object] = field(default_factory=set)


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> dict[str, Traffic]:
    """Every command of the shared connection, by the id of the request that sent it (read from
    the request's log context, so background work is left out)."""
    seen: dict[str, Traffic] = defaultdict(Traffic)
    send = Multiplexed.execute_many

    async def counted(client: Multiplexed, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        context = logs.current_request()
        if context is not None:
            record = seen[context.request_id]
            record.commands += [str(c[0]).upper() for c in commands]
            line = client._line
            # Commands queue until the write scheduled after this loop iteration: the number
            # of that write names the round trip they travel in.
            record.writes.add((id(line), line.flushes) if line is not None and line.lost is None
                              else object())
        return await send(client, commands)

    monkeypatch.setattr(Multiplexed, "execute_many", counted)
    return seen


@dataclass
class Caller:
    """The client and keys a route's scenario calls with; `measured` marks the request whose
    Redis traffic is compared with the table."""

    client: Client
    keys: Keys
    measured: dict[str, str] = field(default_factory=lambda: {"X-Request-ID": "measured-1"})

    async def ok(self, method: str, path: str, role: str, body: Any = None, *,
                 status: int = 200, measure: bool = False) -> Any:
        headers = {**self.keys(role), **(self.measured if measure else {})}
        return await ok(self.client, method, path, headers, body, status=status)


async def _appended(c: Caller, conversation_id: str, *turn_ids: int, measure: bool = False
                    ) -> Any:
    return await c.ok("POST", f"/v1/conversations/{conversation_id}/turns", "bot", {
        "customer": visitor(f"visitor-{conversation_id}"), "channel": "chat",
        "source": "acme-bot", "turns": [turn(n) for n in turn_ids]}, measure=measure)


async def turn_append(c: Caller) -> None:
    await _appended(c, "web-1", 1)
    await _appended(c, "web-1", 2)
    await _appended(c, "web-1", 3, measure=True)


async def _said(c: Caller, n: int, text: str, *, conversation_id: str = "web-1",
                measure: bool = False) -> Any:
    return await c.ok("POST", f"/v1/conversations/{conversation_id}/turns", "bot", {
        "customer": visitor(f"visitor-{conversation_id}"), "channel": "chat",
        "source": "acme-bot", "turns": [turn(n, text)]}, measure=measure)


async def turn_append_raising_an_alert(c: Caller) -> None:
    await _said(c, 1, "I will sue you", conversation_id="web-2")  # the alert's script known
    await _appended(c, "web-1", 1, 2)
    await _said(c, 3, "I will sue you", measure=True)


async def turn_append_with_its_alert_open(c: Caller) -> None:
    await _appended(c, "web-1", 1, 2)
    await _said(c, 3, "I will sue you")
    await _said(c, 4, "My lawyer has the papers", measure=True)


async def brief_after_a_new_turn(c: Caller) -> None:
    cus_id = (await _appended(c, "web-1", 1, 2))["customer_id"]
    await c.ok("GET", f"/v1/customers/{cus_id}/context", "agent")
    await _appended(c, "web-1", 3)
    await c.ok("GET", f"/v1/customers/{cus_id}/context", "agent", measure=True)


async def brief_first_read(c: Caller) -> None:
    other = (await _appended(c, "web-2", 1, 2))["customer_id"]
    await c.ok("GET", f"/v1/customers/{other}/context", "agent")  # the agent key is known
    cus_id = (await _appended(c, "web-1", 1, 2))["customer_id"]
    await c.ok("GET", f"/v1/customers/{cus_id}/context", "agent", measure=True)


async def brief_unchanged(c: Caller) -> None:
    cus_id = (await _appended(c, "web-1", 1, 2))["customer_id"]
    await c.ok("GET", f"/v1/customers/{cus_id}/context", "agent")
    await c.ok("GET", f"/v1/customers/{cus_id}/context", "agent", measure=True)


async def brief_not_modified(c: Caller) -> None:
    cus_id = (await _appended(c, "web-1", 1, 2))["customer_id"]
    path = f"/v1/customers/{cus_id}/context"
    first = await c.client.get(path, headers=c.keys("agent"))
    assert first.status == 200
    headers = {**c.keys("agent"), "If-None-Match": first.headers["ETag"]}
    assert (await c.client.get(path, headers=headers)).status == 304
    again = await c.client.get(path, headers={**headers, **c.measured})
    assert again.status == 304


def _handoff(conversation_id: str) -> dict[str, Any]:
    return {"customer": visitor(f"visitor-{conversation_id}"), "conversation_id": conversation_id,
            "channel": "chat", "source": "acme-bot", "reason": "customer_request",
            "priority": 2, "queue": "billing", "summary": "Charged twice for order A-1001"}


async def handoff_create(c: Caller) -> None:
    await _appended(c, "web-1", 1)
    await _appended(c, "web-2", 1)
    first = await c.ok("POST", "/v1/handoffs", "bot", _handoff("web-1"), status=201)
    await c.ok("POST", f"/v1/handoffs/{first['id']}/accept", "agent", {"agent_id": "agent-7"})
    await c.ok("POST", "/v1/handoffs", "bot", _handoff("web-2"), status=201, measure=True)


async def handoff_accept(c: Caller) -> None:
    await _appended(c, "web-1", 1)
    await _appended(c, "web-2", 1)
    first = await c.ok("POST", "/v1/handoffs", "bot", _handoff("web-1"), status=201)
    await c.ok("POST", f"/v1/handoffs/{first['id']}/accept", "agent", {"agent_id": "agent-7"})
    second = await c.ok("POST", "/v1/handoffs", "bot", _handoff("web-2"), status=201)
    await c.ok("POST", f"/v1/handoffs/{second['id']}/accept", "agent", {"agent_id": "agent-8"},
               measure=True)


async def dialogflow_webhook(c: Caller) -> None:
    session, body = dialogflow.webhook("I was charged twice for order A-1001")
    await c.ok("POST", dialogflow.URL, "bot", body)
    _, body = dialogflow.webhook("It was on Tuesday", session=session)
    await c.ok("POST", dialogflow.URL, "bot", body, measure=True)


async def lex_code_hook(c: Caller) -> None:
    session, body = lex.event(transcript="I was charged twice")
    await c.ok("POST", lex.URL, "bot", body)
    _, body = lex.event(transcript="It was on Tuesday")
    body["sessionId"] = session
    await c.ok("POST", lex.URL, "bot", body, measure=True)


async def rasa_event(c: Caller) -> None:
    sender, events = rasa.broker_events()
    await c.ok("POST", rasa.URL, "bot", events[0])
    later = {**events[0], "text": "It was on Tuesday", "timestamp": events[0]["timestamp"] + 60}
    await c.ok("POST", rasa.URL, "bot", later, measure=True)


async def twilio_incoming_call(c: Caller) -> None:
    form = twilio.sample("twilio-voice-incoming.form")
    for measure in (False, True):  # the same caller calls again
        sid, _ = twilio.new_call()
        answer = await twilio.post(c.client, twilio.VOICE,
                                   twilio.vary(form, CallSid=sid, From=PHONE, Caller=PHONE),
                                   twilio.basic(c.keys),
                                   headers=c.measured if measure else None)
        assert answer.status == 200, answer.raw[:300]


async def connect_identify(c: Caller) -> None:
    await c.ok("POST", connect.FLOW, "ivr", connect.event(phone=PHONE, operation="identify"))
    await c.ok("POST", connect.FLOW, "ivr", connect.event(phone=PHONE, operation="identify"),
               measure=True)


async def connect_turn(c: Caller) -> None:
    call = connect.event(phone=PHONE, operation="identify")
    await c.ok("POST", connect.FLOW, "ivr", call)
    contact = call["Details"]["ContactData"]["ContactId"]
    for n, measure in ((1, False), (2, True)):
        said = connect.event(phone=PHONE, contact=contact, operation="turn", role="customer",
                             text=f"Press {n} was chosen")
        await c.ok("POST", connect.FLOW, "ivr", said, measure=measure)


PHONE = "+14155550123"
SCENARIOS: dict[str, Callable[[Caller], Awaitable[None]]] = {
    "turn append": turn_append,
    "turn append raising a risk alert": turn_append_raising_an_alert,
    "turn append, its kind's alert open": turn_append_with_its_alert_open,
    "brief, first read": brief_first_read,
    "brief, after a new turn": brief_after_a_new_turn,
    "brief, unchanged since the last read": brief_unchanged,
    "brief answered 304": brief_not_modified,
    "hand-off create": handoff_create,
    "hand-off accept": handoff_accept,
    "Dialogflow CX webhook": dialogflow_webhook,
    "Lex V2 code hook": lex_code_hook,
    "Rasa event": rasa_event,
    "Twilio voice, incoming call": twilio_incoming_call,
    "Amazon Connect identify": connect_identify,
    "Amazon Connect turn": connect_turn,
}


@pytest.mark.skipif(os.environ.get("HANDOFF_TEST_REDIS") == "cluster",
                    reason="a cluster client routes each command by slot: no shared connection")
@pytest.mark.parametrize("route", list(COSTS))
async def test_a_hot_route_makes_the_round_trips_and_commands_its_table_row_allows(
        make_client: AppFactory, keys: Keys, traffic: dict[str, Traffic], route: str) -> None:
    client = await make_client(twilio_auth_tokens={"acme": SecretStr(twilio.TOKEN)},
                               twilio_prompt="Enter your code now.")
    caller = Caller(client, keys)

    await SCENARIOS[route](caller)

    sent = traffic[caller.measured["X-Request-ID"]]
    assert (len(sent.writes), len(sent.commands)) == COSTS[route], (
        f"{route}: {len(sent.writes)} round trips, {len(sent.commands)} commands "
        f"({', '.join(sent.commands)}); the table says {COSTS[route]}")


@pytest.mark.parametrize("write_ack", ["local", "replica"])
async def test_every_request_goes_through_one_middleware_whatever_the_write_ack(
        make_client: AppFactory, write_ack: str) -> None:
    # aiohttp gives each middleware a coroutine frame and a handler wrapper per request: the
    # request id, access line, problem rendering, in-flight cap and replica wait are one.
    client = await make_client(write_ack=write_ack)
    assert len(client.app.middlewares) == 1
    response = await client.get("/v1/no-such-route")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert response.headers["X-Request-ID"]
