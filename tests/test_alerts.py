"""Supervisor alerts: a customer says something risky, every supervisor of the tenant hears of it
at once (the live alert stream, a signed webhook, the open list), once per customer and kind,
until one of them acknowledges it. Real Redis, real HTTP, real webhook receivers.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.services import alerts
from handoff.store import keys as redis_keys
from tests.conftest import CLUSTER, AppFactory, Keys, RedisServer, free_port
from tests.faults.service import Service, mint_key
from tests.redis_peek import assert_unchanged, snapshot
from tests.scenario import Json, assert_problem, call, ok, until
from tests.test_events import EventStream, following
from tests.test_webhook_outbox import post_into_a_crash
from tests.test_webhooks import FAST, Receiver, documented_verify, receiver, settled

__all__ = ["receiver"]  # the fixture, imported so pytest finds it here
Client = TestClient[Any, Any]
TS = "2026-11-23T10:02:00Z"
PAN = "4111 1111 1111 1111"
STREAM = "/v1/alerts/events"


def said(turn_id: str, text: str, role: str = "customer") -> Json:
    return {"id": turn_id, "role": role, "text": text, "ts": TS}


async def chat(client: Client, keys: Keys, *turns: Json, visitor: str = "visitor-42",
               conversation: str = "web-7f3a", tenant: str = "acme") -> Json:
    """The bot posts what a web chat visitor said."""
    return await ok(client, "POST", f"/v1/conversations/{conversation}/turns",
                    keys("bot", tenant), {
                        "customer": {"identities": [{"kind": "chat", "value": visitor}]},
                        "channel": "chat", "source": "acme-bot", "turns": list(turns)})


async def open_alerts(client: Client, headers: dict[str, str], query: str = "") -> list[Json]:
    page = await ok(client, "GET", f"/v1/alerts{query}", headers)
    items: list[Json] = page["items"]
    return items


async def second_supervisor(client: Client, keys: Keys) -> dict[str, str]:
    """Another supervisor of acme, with a key of their own."""
    made = await ok(client, "POST", "/v1/admin/keys", keys("admin"),
                    {"role": "supervisor", "name": "night shift"}, status=201)
    return {"Authorization": f"Bearer {made['key']}"}


async def next_of(events: EventStream, kind: str, seconds: float = 2.0) -> Any:
    """The next event of `kind` on a stream, within `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            event = await events.next()
            if event.type == kind:
                return event


# -- the story --------------------------------------------------------------------------------


async def test_a_customer_who_says_lawsuit_alerts_every_supervisor_once_until_acknowledged(
        make_client: AppFactory, keys: Keys, receiver: Receiver,
        redis_sync: redis.Redis) -> None:
    client = await make_client(**FAST)
    hook = await ok(client, "POST", "/v1/admin/webhooks", keys("admin"), {
        "url": receiver.url, "events": ["alert.raised", "alert.acknowledged"]}, status=201)
    night = await second_supervisor(client, keys)

    async with following(client, STREAM, keys("supervisor")) as day_stream, \
            following(client, STREAM, night) as night_stream:
        posted_at = time.monotonic()
        posted = await chat(client, keys, said("t1", "Fix this or I file a lawsuit"))
        raised = await next_of(day_stream, "alert.raised")
        assert time.monotonic() - posted_at < 2.0
        alert = raised.data["record"]
        assert raised.data["customer_id"] == posted["customer_id"]
        assert (alert["kind"], alert["severity"], alert["status"]) == ("legal", "high", "open")
        assert alert["terms"] == ["lawsuit"]
        assert alert["turn"]["text"] == "Fix this or I file a lawsuit"
        assert (await next_of(night_stream, "alert.raised")).data == raised.data

        # The webhook receiver gets the same alert, signed with the subscription's secret.
        (delivery,) = await receiver.wait_for(1)
        verify = documented_verify()
        assert verify([hook["secret"]], delivery.headers["Handoff-Signature"], delivery.body)
        assert delivery.headers["Handoff-Event-Type"] == "alert.raised"
        assert delivery.json()["data"] == raised.data

        # Three more angry turns: still one alert of that kind for this customer.
        await chat(client, keys, said("t2", "My lawyer will hear about this"))
        await chat(client, keys, said("t3", "A lawsuit, I said. LAWSUIT."))
        await chat(client, keys, said("t4", "Legal action is next"))
        opened = await open_alerts(client, keys("supervisor"))
        assert [a["id"] for a in opened] == [alert["id"]]

        # One supervisor acknowledges; the other's screen clears.
        acked = await ok(client, "POST", f"/v1/alerts/{alert['id']}/ack", keys("supervisor"),
                         {"supervisor_id": "sup-dana"})
        assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "sup-dana")
        cleared = await next_of(night_stream, "alert.acknowledged")
        assert cleared.data["record"]["id"] == alert["id"]
        assert await open_alerts(client, night) == []
        assert [a["id"] for a in await open_alerts(client, night, "?status=acknowledged")] == [
            alert["id"]]

    await receiver.wait_for(2)
    await settled(redis_sync)
    assert [r.headers["Handoff-Event-Type"] for r in receiver.got] == ["alert.raised",
                                                                       "alert.acknowledged"]
    assert receiver.got[1].json()["data"]["record"]["acknowledged_by"] == "sup-dana"


async def test_the_alert_quotes_the_flagged_turn_masked_with_its_conversation_and_channel(
        client: Client, keys: Keys) -> None:
    call_ = {"customer": {"identities": [{"kind": "phone", "value": "+15550104477"}]},
             "source": "acme-ivr"}
    await ok(client, "POST", "/v1/conversations/CA9f2/turns", keys("ivr"),
             {**call_, "channel": "voice", "turns": [said("c1", "Press 1 for billing", "bot")]})
    # The IVR's later post does not repeat the channel: the alert finds it in the conversation.
    await ok(client, "POST", "/v1/conversations/CA9f2/turns", keys("ivr"), {**call_, "turns": [
        said("c2", f"My card {PAN} was charged twice, my solicitor is ready")]})

    (alert,) = await open_alerts(client, keys("supervisor"))
    assert alert["turn"] == {"id": "c2", "conversation_id": "CA9f2", "channel": "voice",
                             "text": "My card **** **** **** 1111 was charged twice, "
                                     "my solicitor is ready", "ts": TS}
    assert alert["acknowledged_by"] is None and alert["acknowledged_at"] is None
    assert alert["raised_at"] >= "2026"
    # The brief flags the turn as it always did (a `risk`, now with its category); what keeps
    # the alert open is not a flag.
    brief = await ok(client, "GET", f"/v1/customers/{alert['customer_id']}/context",
                     keys("supervisor"))
    assert [(f["kind"], f["category"], f["term"], f["turn_id"]) for f in brief["flags"]] == [
        ("risk", "legal", "solicitor", "c2")]


async def test_each_kind_alerts_on_its_own_with_the_severity_its_tenant_gives_it(
        make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(alert_rules={
        "*": {"legal": "high", "churn": "medium", "frustration": "low"},
        "acme": {"frustration": "off", "churn": "high"}})
    await chat(client, keys, said("t1", "This is ridiculous, cancel my account or I sue you"))
    await chat(client, keys, said("t1", "ridiculous, cancel my account"), tenant="globex",
               visitor="g-1", conversation="g-web")

    acme = {a["kind"]: a["severity"] for a in await open_alerts(client, keys("supervisor"))}
    globex = {a["kind"]: a["severity"]
              for a in await open_alerts(client, keys("supervisor", "globex"))}
    assert acme == {"legal": "high", "churn": "high"}  # frustration is off for acme
    assert globex == {"churn": "medium", "frustration": "low"}


async def test_after_an_acknowledgement_the_next_flagged_turn_raises_a_new_alert(
        client: Client, keys: Keys) -> None:
    await chat(client, keys, said("t1", "I will take legal action"))
    (first,) = await open_alerts(client, keys("supervisor"))
    await ok(client, "POST", f"/v1/alerts/{first['id']}/ack", keys("supervisor"))
    # The turn already alerted is not a new one, even posted again.
    await chat(client, keys, said("t1", "I will take legal action"))
    assert await open_alerts(client, keys("supervisor")) == []

    await chat(client, keys, said("t2", "My attorney has the papers"))
    (second,) = await open_alerts(client, keys("supervisor"))
    assert second["id"] != first["id"] and second["turn"]["id"] == "t2"


async def test_a_retried_post_raises_one_alert(client: Client, keys: Keys) -> None:
    turns = [said("t1", "Hello"), said("t2", "I want to speak to a lawyer")]
    await chat(client, keys, *turns)
    again = await chat(client, keys, *turns)
    assert again["duplicates"] == 2
    assert len(await open_alerts(client, keys("supervisor"))) == 1


async def test_what_agents_and_bots_say_raises_no_alert(client: Client, keys: Keys) -> None:
    await chat(client, keys, said("t1", "Our lawyer reviewed your complaint", role="bot"))
    assert await open_alerts(client, keys("supervisor")) == []


async def test_acknowledging_again_changes_nothing_and_answers_the_first_acknowledgement(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await chat(client, keys, said("t1", "I am fed up"))
    (alert,) = await open_alerts(client, keys("supervisor"))
    first = await ok(client, "POST", f"/v1/alerts/{alert['id']}/ack", keys("supervisor"),
                     {"supervisor_id": "sup-1"})
    before = snapshot(redis_sync)
    again = await ok(client, "POST", f"/v1/alerts/{alert['id']}/ack", keys("supervisor"),
                     {"supervisor_id": "sup-2"})
    assert again == first and again["acknowledged_by"] == "sup-1"
    assert_unchanged(before, snapshot(redis_sync))


async def test_two_supervisors_acknowledging_at_once_make_one_acknowledgement(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    night = await second_supervisor(client, keys)
    await chat(client, keys, said("t1", "I am fed up"))
    (alert,) = await open_alerts(client, keys("supervisor"))
    answers = await asyncio.gather(*(
        ok(client, "POST", f"/v1/alerts/{alert['id']}/ack", who, {"supervisor_id": name})
        for who, name in ((keys("supervisor"), "sup-1"), (night, "sup-2"))))
    assert answers[0] == answers[1]
    assert answers[0]["acknowledged_by"] in ("sup-1", "sup-2")
    told = [f[b"t"] for _, f in redis_sync.xrange(redis_keys.alert_events("acme"))]
    assert told == [b"alert.raised", b"alert.acknowledged"]


# -- the live stream --------------------------------------------------------------------------


async def test_reconnecting_with_last_event_id_replays_exactly_the_alerts_missed(
        client: Client, keys: Keys) -> None:
    async with following(client, STREAM, keys("supervisor")) as events:
        for n in range(3):
            await chat(client, keys, said("t1", "I will sue you"), visitor=f"v{n}",
                       conversation=f"web-{n}")
        seen = await events.take(3)
    assert [e.type for e in seen] == ["alert.raised"] * 3

    resume = {**keys("supervisor"), "Last-Event-ID": str(seen[0].id)}
    async with following(client, STREAM, resume) as events:
        replayed = await events.take(2)
        await ok(client, "POST", f"/v1/alerts/{seen[2].data['record']['id']}/ack",
                 keys("supervisor"))
        live = await events.next()
    assert [(e.id, e.data) for e in replayed] == [(e.id, e.data) for e in seen[1:]]
    assert (live.type, live.data["record"]["id"]) == ("alert.acknowledged",
                                                      seen[2].data["record"]["id"])


async def test_a_malformed_last_event_id_is_a_bad_request(client: Client, keys: Keys) -> None:
    answer = await call(client, "GET", STREAM,
                        headers={**keys("supervisor"), "Last-Event-ID": "not-an-id"})
    assert "not-an-id" not in assert_problem(answer, 400)["detail"]


# -- who may ----------------------------------------------------------------------------------


async def test_a_supervisor_reads_briefs_and_the_queue_audited_and_writes_no_context(
        client: Client, keys: Keys) -> None:
    posted = await chat(client, keys, said("t1", "I was charged twice"))
    customer = posted["customer_id"]
    handoff = await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": {"identities": [{"kind": "chat", "value": "visitor-42"}]},
        "conversation_id": "web-7f3a", "reason": "customer_request", "queue": "billing",
        "summary": "Charged twice"}, status=201)
    supervisor = {**keys("supervisor"), "X-Agent-Id": "sup-dana"}

    brief = await ok(client, "GET", "/v1/customers/chat:visitor-42/context", supervisor)
    assert brief["customer"]["id"] == customer
    transcript = await ok(client, "GET", f"/v1/customers/{customer}/turns", supervisor)
    assert [t["id"] for t in transcript["items"]] == ["t1"]
    queue = await ok(client, "GET", "/v1/handoffs", supervisor)
    assert [h["id"] for h in queue["items"]] == [handoff["id"]]

    audit = await ok(client, "GET", f"/v1/admin/audit?customer={customer}", keys("admin"))
    assert [(e["role"], e["what"], e["agent_id"]) for e in audit["items"]] == [
        ("supervisor", "turns", "sup-dana"), ("supervisor", "context", "sup-dana")]
    for method, path, body in (
            ("POST", "/v1/conversations/web-7f3a/turns", {"turns": [said("s1", "hi", "agent")]}),
            ("PUT", f"/v1/customers/{customer}/facts", {"facts": {"x": "y"}}),
            ("POST", f"/v1/handoffs/{handoff['id']}/accept", {"agent_id": "sup-dana"}),
            ("GET", f"/v1/customers/{customer}/events", None),
            ("DELETE", f"/v1/customers/{customer}", None)):
        answer = await call(client, method, path, headers=supervisor, json_body=body)
        assert "a supervisor key may not use this route" in assert_problem(answer, 403)["detail"]


@pytest.mark.parametrize("role", ["bot", "ivr", "agent", "admin"])
async def test_only_supervisors_see_and_acknowledge_alerts(role: str, client: Client,
                                                          keys: Keys) -> None:
    await chat(client, keys, said("t1", "I will sue you"))
    (alert,) = await open_alerts(client, keys("supervisor"))
    for method, path in (("GET", "/v1/alerts"), ("GET", STREAM),
                         ("POST", f"/v1/alerts/{alert['id']}/ack")):
        answer = await call(client, method, path, headers=keys(role))
        assert f"{role} key may not use this route" in assert_problem(answer, 403)["detail"]
    assert [a["id"] for a in await open_alerts(client, keys("supervisor"))] == [alert["id"]]


async def test_a_supervisor_panel_token_acknowledges_as_its_supervisor(
        client: Client, keys: Keys) -> None:
    minted = await ok(client, "POST", "/v1/desk/tokens", keys("supervisor"),
                      {"agent_id": "sup-dana", "minutes": 30})
    assert "/desk/supervisor#token=dt_" in minted["panel_url"]
    token = {"Authorization": f"Bearer {minted['token']}"}
    await chat(client, keys, said("t1", "I will sue you"))
    (alert,) = await open_alerts(client, token)
    acked = await ok(client, "POST", f"/v1/alerts/{alert['id']}/ack", token,
                     {"supervisor_id": "someone-else"})
    assert acked["acknowledged_by"] == "sup-dana"
    # It reads the brief as its supervisor, and writes nothing an agent's panel could.
    brief = await ok(client, "GET", f"/v1/customers/{alert['customer_id']}/context", token)
    assert brief["customer"]["id"] == alert["customer_id"]
    for method, path, body in (
            ("POST", "/v1/conversations/web-7f3a/turns", {"turns": [said("s1", "hi", "agent")]}),
            ("POST", f"/v1/customers/{alert['customer_id']}/reask-check", {"text": "hi"}),
            ("POST", "/v1/desk/tokens", {"agent_id": "sup-dana"})):
        assert_problem(await call(client, method, path, headers=token, json_body=body), 403)
    agents = await ok(client, "POST", "/v1/desk/tokens", keys("agent"), {"agent_id": "agent-7"})
    assert_problem(await call(client, "GET", "/v1/alerts",
                              headers={"Authorization": f"Bearer {agents['token']}"}), 403)


# -- tenants ----------------------------------------------------------------------------------


async def test_another_tenants_supervisor_finds_none_of_acmes_alerts(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await chat(client, keys, said("t1", "I will sue you"))
    (alert,) = await open_alerts(client, keys("supervisor"))
    globex = keys("supervisor", "globex")
    before = snapshot(redis_sync)
    assert await open_alerts(client, globex) == []
    assert await open_alerts(client, globex, "?status=acknowledged") == []
    assert_problem(await call(client, "POST", f"/v1/alerts/{alert['id']}/ack", headers=globex),
                   404)
    assert_unchanged(before, snapshot(redis_sync))

    async with following(client, STREAM, {**globex, "Last-Event-ID": "0-0"}) as events:
        await chat(client, keys, said("g1", "I will sue you"), tenant="globex", visitor="g",
                   conversation="g-web")
        (own,) = await events.take(1)
    assert own.data["record"]["id"] != alert["id"]
    assert (await open_alerts(client, keys("supervisor")))[0]["status"] == "open"


# -- bad input ----------------------------------------------------------------------------------


BAD_REQUESTS: dict[str, tuple[str, str, Any, int]] = {
    "an alert id nobody issued": ("POST", "/v1/alerts/al_01JC0000000000000000000000/ack",
                                  None, 404),
    "not an alert id at all": ("POST", "/v1/alerts/nothing-like-an-id/ack", None, 404),
    "an unknown field in the body": ("POST", "/v1/alerts/{alert}/ack", {"colour": "blue"}, 422),
    "a supervisor id with a line break": ("POST", "/v1/alerts/{alert}/ack",
                                          {"supervisor_id": "a\nb"}, 422),
    "a body that is not JSON": ("POST", "/v1/alerts/{alert}/ack", b"{'nope'", 400),
    "a status that does not exist": ("GET", "/v1/alerts?status=closed", None, 422),
    "a cursor the list never gave": ("GET", "/v1/alerts?before=al_nope", None, 422),
    "a page size of zero": ("GET", "/v1/alerts?limit=0", None, 422),
}


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS.values(),
                         ids=BAD_REQUESTS.keys())
async def test_bad_input_is_a_problem_and_changes_nothing(
        method: str, path: str, body: Any, status: int, client: Client, keys: Keys,
        redis_sync: redis.Redis) -> None:
    await chat(client, keys, said("t1", "I will sue you"))
    (alert,) = await open_alerts(client, keys("supervisor"))
    before = snapshot(redis_sync)
    headers = keys("supervisor")
    if isinstance(body, bytes):
        answer = await call(client, method, path.format(alert=alert["id"]),
                            headers={**headers, "Content-Type": "application/json"}, data=body)
    else:
        answer = await call(client, method, path.format(alert=alert["id"]), headers=headers,
                            json_body=body)
    assert_problem(answer, status)
    assert_unchanged(before, snapshot(redis_sync))


async def test_alert_rules_that_name_a_kind_no_key_can_hold_are_refused_at_start() -> None:
    from pydantic import ValidationError

    from handoff.kernel.settings import Settings

    with pytest.raises(ValidationError, match="kinds are lower-case words"):
        Settings(alert_rules={"*": {"legal:high": "high"}})


# -- erasure, figures ----------------------------------------------------------------------


async def test_erasing_the_customer_erases_its_alerts_and_their_events(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    posted = await chat(client, keys, said("t1", "I will sue you, I am fed up"))
    await chat(client, keys, said("t1", "I will sue you"), visitor="other", conversation="w2")
    kept = [a for a in await open_alerts(client, keys("supervisor"))
            if a["customer_id"] != posted["customer_id"]]
    erased = await ok(client, "DELETE", f"/v1/customers/{posted['customer_id']}",
                      keys("admin"))
    assert erased["alerts"] == 2
    assert await open_alerts(client, keys("supervisor")) == kept
    async with following(client, STREAM, {**keys("supervisor"), "Last-Event-ID": "0-0"}
                         ) as events:
        (left,) = await events.take(1)
    assert left.data["customer_id"] != posted["customer_id"]
    assert not any(posted["customer_id"].encode() in k for k in redis_sync.scan_iter("*al*"))


async def test_the_effort_figures_read_when_each_alert_was_raised_and_acknowledged(
        client: Client, keys: Keys) -> None:
    deps = client.app[DEPS]
    start = deps.now_ms()
    await chat(client, keys, said("t1", "I will sue you"))
    await chat(client, keys, said("t1", "I am fed up"), visitor="v2", conversation="w2")
    (legal,) = [a for a in await open_alerts(client, keys("supervisor"))
                if a["kind"] == "legal"]
    await ok(client, "POST", f"/v1/alerts/{legal['id']}/ack", keys("supervisor"))

    timings = await alerts.timings(deps, "acme", start, deps.now_ms() + 1)
    assert sorted((t.kind, t.acknowledged_ms is not None) for t in timings) == [
        ("frustration", False), ("legal", True)]
    assert all(start <= t.raised_ms <= (t.acknowledged_ms or t.raised_ms) for t in timings)


# -- a crash between the turn and its alert ---------------------------------------------------


@pytest.mark.skipif(CLUSTER, reason="runs its own single Redis server")
async def test_a_crash_between_the_turn_and_its_alert_loses_no_alert_and_raises_none_twice(
        tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis", free_port())
    await asyncio.to_thread(store.start)
    env = {"HANDOFF_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
           "HANDOFF_WEBHOOK_OUTBOX_LEASE_SECONDS": "1", "HANDOFF_WEBHOOK_POLL_SECONDS": "0.2"}
    doomed = Service(store.url, free_port(), tmp_path / "serve.log",
                     extra_env={**env, "HANDOFF_FAULT_CRASH_BEFORE_ENQUEUE": "true"})
    revived = Service(store.url, doomed.port, tmp_path / "serve.log", extra_env=env)
    peek = redis.Redis(port=store.port)
    body = {"customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
            "channel": "chat", "turns": [said("t1", "I will sue you")]}
    try:
        admin, bot, supervisor = [{"Authorization": "Bearer " + await asyncio.to_thread(
            mint_key, store.url, role)} for role in ("admin", "bot", "supervisor")]
        await asyncio.to_thread(doomed.start)
        await post_into_a_crash(doomed, admin, bot, receiver.url, "alert.raised", body)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            # The turn and its alert landed together; the tenant has not heard of it yet.
            assert not peek.exists(redis_keys.alerts("acme", "open"))

            await asyncio.to_thread(revived.start)
            (delivery,) = await receiver.wait_for(1, seconds=15)
            async with session.post(f"{revived.url}/v1/conversations/web-1/turns",
                                    headers=bot, json=body) as r:
                assert (await r.json())["duplicates"] == 1  # the retry raises nothing
            await asyncio.sleep(4)  # past another lease, sweep and poll: no second copy
            async with session.get(f"{revived.url}/v1/alerts", headers=supervisor) as r:
                listed = (await r.json())["items"]
    finally:
        peek.close()
        revived.stop()
        doomed.stop()
        store.stop()
    assert len(receiver.got) == 1
    assert [a["id"] for a in listed] == [delivery.json()["data"]["record"]["id"]]
    assert json.loads(delivery.body)["type"] == "alert.raised"


async def test_the_sweeper_strikes_a_raised_alert_off_the_outbox_and_raises_it_never_twice(
        make_client: AppFactory, keys: Keys, redis_sync: redis.Redis) -> None:
    client = await make_client(webhook_outbox_lease_seconds=0.5, webhook_poll_seconds=0.05)
    posted = await chat(client, keys, said("t1", "I will sue you"))
    outbox = redis_keys.customer("acme", posted["customer_id"]).outbox
    # The writer leaves its alert's outbox entry behind, off the turn's path...
    assert redis_sync.hlen(outbox) == 1
    # ...and the sweeper strikes it off once it is past the lease, raising nothing again.
    await until(lambda: redis_sync.hlen(outbox) == 0, 5)
    assert len(await open_alerts(client, keys("supervisor"))) == 1
    assert redis_sync.xlen(redis_keys.alert_events("acme")) == 1


SAID_BY_KIND = {"legal": "Next it is a lawsuit", "churn": "Just close my account",
                "complaint": "I want to make a formal complaint",
                "vulnerability": "My husband passed away last month",
                "frustration": "This is the third time I call"}


@pytest.mark.parametrize(("kind", "text"), SAID_BY_KIND.items(), ids=SAID_BY_KIND.keys())
async def test_each_default_kind_of_risk_alerts_a_supervisor(
        kind: str, text: str, client: Client, keys: Keys) -> None:
    await chat(client, keys, said("t1", text))
    assert [a["kind"] for a in await open_alerts(client, keys("supervisor"))] == [kind]
