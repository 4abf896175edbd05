"""The Python client against a live server: every route through a typed method, errors as typed
exceptions, retries that wait out a Redis outage or a rate limit, an idempotency key that
survives a lost answer, and event streams that resume after a cut without a gap or a repeat."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.client import (
    ConflictError,
    Event,
    EventStream,
    ForbiddenError,
    HandoffClient,
    NotFoundError,
    RetryPolicy,
    UnauthorizedError,
    UnavailableError,
    UnprocessableError,
)
from handoff.kernel.settings import Settings
from handoff.services import apikeys
from schemas.conversations import AppendTurns, TurnIn
from schemas.webhooks import DeadLetter
from tests.conftest import CLUSTER, AppFactory, Keys, RedisServer, free_port
from tests.scenario import chat_customer, phone_customer, turn, until
from tests.tcp_proxy import TcpProxy

Client = TestClient[Any, Any]
CHAT, PHONE = chat_customer(), phone_customer()
FAST = RetryPolicy(attempts=6, total=20.0, base=0.05, cap=0.5)


def url_of(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


class Routes:
    """Which routes a session called, as the OpenAPI document names them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.patterns = [(method.upper(), template, re.compile(
            "^" + "/".join("[^/]+" if part.startswith("{") else re.escape(part)
                           for part in template.split("/")) + "$"))
            for template, operations in document["paths"].items() for method in operations]
        self.called: set[tuple[str, str]] = set()

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def started(session: Any, context: Any, params: Any) -> None:
            for method, template, pattern in self.patterns:
                if method == params.method and pattern.match(params.url.raw_path):
                    self.called.add((method, template))

        config.on_request_start.append(started)
        return config


async def test_every_route_has_a_client_method_and_the_whole_story_runs_through_them(
        client: Client, keys: Keys) -> None:
    url = url_of(client)
    document = (await (await client.get("/openapi.json")).json())
    routes = Routes(document)
    secret = keys.secrets
    async with aiohttp.ClientSession(trace_configs=[routes.trace()]) as http:
        bot = HandoffClient(url, secret[("acme", "bot")], session=http)
        ivr = HandoffClient(url, secret[("acme", "ivr")], session=http)
        agent = HandoffClient(url, secret[("acme", "agent")], session=http, agent_id="agent-7")
        admin = HandoffClient(url, secret[("acme", "admin")], session=http)
        supervisor = HandoffClient(url, secret[("acme", "supervisor")], session=http)

        assert (await bot.health()).status == "ok"
        assert (await bot.ready()).redis == "up"
        assert "handoff_http_requests_total" in await bot.metrics()
        assert "/v1/handoffs" in (await bot.openapi())["paths"]
        me = await ivr.whoami()
        assert (me.tenant, me.role, me.id.startswith("key_")) == ("acme", "ivr", True)

        queue = await agent.queue_events().open()
        appended = await bot.append_turns("web-7f3a", AppendTurns(
            customer=CHAT, channel="chat", source="acme-bot",  # type: ignore[arg-type]
            turns=[TurnIn.model_validate(turn("t1", "I was charged twice"))],
            facts={"order_number": "A-1001"}))
        assert (appended.appended, appended.duplicates) == (1, 0)
        again = await bot.append_turns("web-7f3a", {"turns": [turn("t1", "I was charged twice")]})
        assert (again.appended, again.duplicates) == (0, 1)
        customer = appended.customer_id
        facts = await bot.set_facts(customer, {"facts": {"issue": "double charge"}})
        assert facts.updated == ["issue"]

        requested = await bot.request_handoff({
            "customer": CHAT, "conversation_id": "web-7f3a", "reason": "customer_request",
            "priority": 2, "queue": "billing", "summary": "Charged twice for order A-1001",
            "continuation": True})
        assert requested.status == "pending" and requested.continuation_code
        first_queue_event = await asyncio.wait_for(anext(queue), 10)
        assert first_queue_event.type == "handoff.requested"
        assert first_queue_event.record["id"] == requested.id
        await queue.aclose()

        redeemed = await ivr.redeem(requested.continuation_code, {
            "customer": PHONE, "conversation_id": "CA9f2", "channel": "voice",
            "source": "acme-ivr"})
        assert (redeemed.customer_id, redeemed.handoff_id) == (customer, requested.id)
        verified = await ivr.verify({
            "customer": PHONE, "identity": {"kind": "account", "value": "88812345"},
            "method": "pin", "level": "high", "channel": "voice", "conversation_id": "CA9f2"})
        assert verified.verified and verified.customer_id == customer

        page = await agent.list_handoffs(queue="billing")
        assert [h.id for h in page.items] == [requested.id]
        token = await agent.mint_desk_token("agent-7", minutes=5)
        assert (token.tenant, token.agent_id) == ("acme", "agent-7")
        assert token.panel_url.endswith(f"/desk/#token={token.token}")
        panel = HandoffClient(url, token.token, session=http)
        assert [h.id for h in (await panel.list_handoffs(queue="billing")).items] == [
            requested.id]
        asks = await panel.reask_check("account:88812345", "Could you tell me your order number?")
        assert [(r.topic, r.known) for r in asks.reasks] == [("order_number", ["order_number"])]
        assert (await agent.reask_check(customer, "I can see order A-1001.")).reasks == []
        with pytest.raises(ForbiddenError) as panel_only:
            await panel.set_facts(customer, {"facts": {"issue": "none"}})
        assert "panel" in (panel_only.value.detail or "")
        assert [h.id async for h in agent.iter_handoffs(queue="billing", page_size=1)] == [
            requested.id]
        assert (await agent.get_handoff(requested.id)).queue == "billing"

        accepted = await agent.accept(requested.id, "agent-7")
        assert accepted.handoff.agent_id == "agent-7"
        assert accepted.context.customer.id == customer
        with pytest.raises(ConflictError) as taken:
            await agent.accept(requested.id, "agent-9")
        assert taken.value.status == 409 and taken.value.title == "Conflict"

        snapshot = await agent.context("account:88812345", turns=10)
        assert snapshot.modified and snapshot.brief.facts["order_number"].value == "A-1001"
        assert [v.identity.value for v in snapshot.brief.verifications] == ["88812345"]
        unchanged = await agent.context("account:88812345", turns=10, cached=snapshot)
        assert not unchanged.modified and unchanged.brief is snapshot.brief
        await bot.append_turns("web-7f3a", {"turns": [turn("t2", "Hello?")]})
        changed = await agent.context("account:88812345", turns=10, cached=snapshot)
        assert changed.modified and changed.etag != snapshot.etag
        assert [t.id for t in changed.brief.turns][-1] == "t2"

        page_of_turns = await agent.turns(customer, limit=1)
        assert [t.id for t in page_of_turns.items] == ["t2"] and page_of_turns.next
        assert [t.id async for t in agent.iter_turns(customer, page_size=1)] == ["t2", "t1"]

        async with agent.events(customer) as stream:
            await bot.append_turns("web-7f3a", {"turns": [turn("t3", "Still there?")]})
            event = await asyncio.wait_for(anext(stream), 10)
        assert (event.type, event.record["id"], event.customer_id) == (
            "turn.appended", "t3", customer)

        async with supervisor.alert_events() as alerts:
            await bot.append_turns("web-7f3a", {"turns": [
                turn("t3b", "Sort it out or my lawyer will")]})
            raised = await asyncio.wait_for(anext(alerts), 10)
        assert (raised.type, raised.record["kind"]) == ("alert.raised", "legal")
        (alert,) = (await supervisor.alerts()).items
        assert [a.id async for a in supervisor.iter_alerts(page_size=1)] == [alert.id]
        acked = await supervisor.acknowledge_alert(alert.id, supervisor_id="sup-dana")
        assert (acked.status, acked.acknowledged_by) == ("acknowledged", "sup-dana")
        assert (await supervisor.alerts()).items == []
        week = await supervisor.kpis(bucket="day")
        assert (week.bucket, week.total.requested, week.total.accepted) == ("day", 1, 1)
        assert week.total.alerts_raised == 1

        resolved = await agent.resolve(requested.id, agent_id="agent-7", note="refunded")
        assert (resolved.status, resolved.note) == ("resolved", "refunded")
        second = await bot.request_handoff({"customer": CHAT, "conversation_id": "web-7f3a",
                                           "reason": "bot_failure"})
        cancelled = await bot.cancel(second.id, note="the customer hung up")
        assert cancelled.status == "cancelled"
        third = await bot.request_handoff({"customer": CHAT, "conversation_id": "web-7f3a",
                                          "reason": "bot_failure"})
        await agent.accept(third.id, "agent-7")
        back = await agent.hand_back(third.id, "refund on its way", outcome="needs_follow_up")
        assert (back.status, back.handed_back_to, back.outcome) == (
            "handed_back", "bot", "needs_follow_up")
        assert (await bot.get_handoff(third.id)).note == "refund on its way"

        audit = await admin.audit(customer=customer)
        assert {"context", "accept"} <= {e.what for e in audit.items}
        assert {e.agent_id for e in audit.items} == {"agent-7"}
        assert len([e async for e in admin.iter_audit(customer=customer, page_size=1)]) == len(
            audit.items)

        made = await admin.create_key("bot", name="night-bot")
        assert made.key and made.role == "bot"
        assert made.id in {k.id for k in await admin.list_keys()}
        rotated = await admin.rotate_key(made.id, grace_seconds=0)
        assert rotated.id != made.id
        revoked = await admin.revoke_key(rotated.id)
        assert revoked.revoked_at is not None
        with pytest.raises(UnauthorizedError):
            await HandoffClient(url, rotated.key, session=http).append_turns(
                "web-7f3a", {"turns": [turn("t4", "x")]})

        hook = await admin.create_webhook({
            "url": "https://desk.example.com/hooks/handoff", "events": ["customer.merged"],
            "description": "desk back end"})
        assert hook.secret and (hook.tenant, hook.events) == ("acme", ["customer.merged"])
        (listed,) = await admin.list_webhooks()
        assert listed.id == hook.id and hook.secret not in listed.model_dump_json()
        rekeyed = await admin.rotate_webhook(hook.id)
        assert rekeyed.secret != hook.secret and rekeyed.secret_rotated_at is not None
        assert (await admin.dead_letters(hook.id, limit=10)).items == []
        assert [d async for d in admin.iter_dead_letters(hook.id)] == []
        with pytest.raises(NotFoundError) as no_letter:
            await admin.redeliver(hook.id, f"dlv_{'0' * 26}")
        assert no_letter.value.detail == "no such dead letter"
        assert (await admin.delete_webhook(hook.id)).id == hook.id
        assert await admin.list_webhooks() == []
        with pytest.raises(NotFoundError):
            await admin.dead_letters(hook.id)

        erased = await admin.erase(customer)
        assert erased.customer_id == customer
        with pytest.raises(NotFoundError):
            await agent.context(customer)

    # /docs is a page for people, not an API call; /v1/adapters/... speak each vendor's own
    # format and are called by the vendor (Twilio, Connect, Dialogflow, Lex, Rasa), never by a
    # Python client of ours.
    missing = {(m, p) for m, p, _ in routes.patterns if (m, p) not in routes.called
               and p != "/docs" and not p.startswith("/v1/adapters/")}
    assert not missing, f"routes no client method reached: {sorted(missing)}"


async def test_a_dead_letter_is_listed_page_by_page_and_redelivered(
        make_client: AppFactory, keys: Keys) -> None:
    server = await make_client(webhook_allow_private_networks=True, webhook_max_attempts=1,
                               webhook_poll_seconds=0.05, webhook_timeout_seconds=2.0)
    answers: list[int] = [500, 500]  # then 200
    delivered: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        delivered.append(request.headers["Handoff-Delivery-Id"])
        return web.Response(status=answers.pop(0) if answers else 200)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hooks", receive)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    try:
        async with HandoffClient(url_of(server), keys.secrets[("acme", "admin")]) as admin, \
                HandoffClient(url_of(server), keys.secrets[("acme", "bot")]) as bot:
            hook = await admin.create_webhook({"url": str(receiver.make_url("/hooks")),
                                               "events": ["turn.appended"]})
            for n in (1, 2):
                await bot.append_turns("web-1", {"customer": CHAT, "channel": "chat",
                                                 "turns": [turn(f"t{n}", "hi")]})
            await until(lambda: len(delivered) == 2, seconds=15.0)
            letters: list[DeadLetter] = []

            async def both_dead() -> bool:
                letters[:] = [d async for d in admin.iter_dead_letters(hook.id, page_size=1)]
                return len(letters) == 2

            async with asyncio.timeout(15):
                while not await both_dead():  # noqa: ASYNC110 (the state is the service's)
                    await asyncio.sleep(0.05)
            assert [d.id for d in letters] == sorted(delivered, reverse=True)
            assert {(d.attempts, d.last_status, d.type) for d in letters} == {
                (1, 500, "turn.appended")}
            queued = await admin.redeliver(hook.id, letters[0].id)
            assert (queued.id, queued.webhook_id, queued.status) == (
                letters[0].id, hook.id, "queued")
            await until(lambda: len(delivered) == 3, seconds=15.0)
            assert delivered[-1] == letters[0].id
            assert [d.id for d in (await admin.dead_letters(hook.id)).items] == [letters[1].id]
    finally:
        await receiver.close()


async def test_errors_arrive_as_typed_exceptions_carrying_the_problem(client: Client,
                                                                       keys: Keys) -> None:
    url = url_of(client)
    async with HandoffClient(url, keys.secrets[("acme", "agent")]) as agent, \
            HandoffClient(url, keys.secrets[("acme", "bot")]) as bot, \
            HandoffClient(url, "not-a-key") as stranger, \
            HandoffClient(url, keys.secrets[("globex", "agent")]) as other_tenant:
        with pytest.raises(UnprocessableError) as invalid:
            await agent.turns("chat:visitor-42", limit=1000)
        assert invalid.value.status == 422
        assert invalid.value.errors == [{"loc": ["query", "limit"], "msg": "between 1 and 500"}]
        with pytest.raises(ForbiddenError) as forbidden:
            await bot.list_handoffs()
        assert "agent" in (forbidden.value.detail or "")
        with pytest.raises(UnauthorizedError):
            await stranger.list_handoffs()
        created = await bot.append_turns("web-1", {"customer": CHAT, "channel": "chat",
                                                   "turns": [turn("t1", "hi")]})
        with pytest.raises(NotFoundError) as not_found:
            await other_tenant.context(created.customer_id)
        assert not_found.value.type.endswith("/not-found")


async def test_a_lost_answer_to_a_handoff_request_is_retried_without_a_second_handoff(
        client: Client, keys: Keys) -> None:
    proxy = TcpProxy(client.server.host, client.server.port)
    port = await proxy.start()
    try:
        async with HandoffClient(f"http://127.0.0.1:{port}", keys.secrets[("acme", "bot")],
                                 retry=FAST) as bot, \
                HandoffClient(url_of(client), keys.secrets[("acme", "agent")]) as agent:
            await bot.append_turns("web-1", {"customer": CHAT, "channel": "chat",
                                             "turns": [turn("t1", "human please")]})
            proxy.swallow_next_answer = True
            handoff = await bot.request_handoff({"customer": CHAT, "conversation_id": "web-1",
                                                 "reason": "customer_request",
                                                 "queue": "billing"})
            assert not proxy.swallow_next_answer, "the first answer was not swallowed"
            queue = await agent.list_handoffs(queue="billing")
        assert [h.id for h in queue.items] == [handoff.id]
    finally:
        await proxy.close()


async def test_events_resume_after_a_cut_connection_without_a_gap_or_a_repeat(
        client: Client, keys: Keys) -> None:
    proxy = TcpProxy(client.server.host, client.server.port)
    port = await proxy.start()
    try:
        async with HandoffClient(url_of(client), keys.secrets[("acme", "bot")]) as bot, \
                HandoffClient(f"http://127.0.0.1:{port}", keys.secrets[("acme", "agent")],
                              retry=FAST) as agent:
            customer = (await bot.append_turns("web-1", {
                "customer": CHAT, "channel": "chat", "turns": [turn("t0", "hi")]})).customer_id

            async def say(*ids: str) -> None:
                for turn_id in ids:
                    await bot.append_turns("web-1", {"turns": [turn(turn_id, turn_id)]})

            stream = agent.events(customer)
            received: list[Event] = []
            reader = asyncio.create_task(_read(stream, received, 9))
            # The connection drops before any event: the stream's announced start still holds.
            await until(lambda: b"id: " in proxy.downstream, seconds=15.0)
            proxy.cut_all()
            await say("t1", "t2", "t3")
            await until(lambda: len(received) >= 3, seconds=15.0)
            # Dropped mid-stream, with turns posted while nobody listens.
            proxy.cut_all()
            await say("t4", "t5", "t6")
            await until(lambda: len(received) >= 6, seconds=15.0)
            proxy.cut_all()
            await say("t7", "t8", "t9")
            await asyncio.wait_for(reader, 20)
        ids = [e.record["id"] for e in received]
        assert ids == ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"]
        event_ids = [e.id for e in received]
        assert len(set(event_ids)) == 9 and event_ids == sorted(
            event_ids, key=lambda i: tuple(int(p) for p in str(i).split("-")))
        assert stream.reconnects >= 3
    finally:
        await proxy.close()


async def _read(stream: EventStream, into: list[Event], count: int) -> None:
    async with stream:
        async for event in stream:
            into.append(event)
            if len(into) == count:
                return


async def test_a_rate_limited_client_waits_as_told_and_every_call_lands(
        make_client: AppFactory, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    limited = await make_client(requests_per_second_per_key=2.0)
    store = limited.app[DEPS].store
    secret, _ = await apikeys.create(store, tenant="acme", role="bot", now_ms=0)
    caplog.set_level(logging.INFO, logger="handoff.client")
    async with HandoffClient(url_of(limited), secret, retry=FAST) as bot:
        results = [await bot.append_turns("web-1", {"customer": CHAT, "channel": "chat",
                                                     "turns": [turn(f"t{n}", "hi")]})
                   for n in range(7)]
    assert sum(r.appended for r in results) == 7
    assert any(": 429; retry" in m for m in caplog.messages), caplog.messages


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", free_port())
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.skipif(CLUSTER, reason="stops its own single Redis server")
async def test_a_write_during_a_redis_outage_is_retried_until_redis_is_back(
        aiohttp_client: Any, own_redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(redis_url=own_redis.url, redis_timeout=0.5, sweep_seconds=60))
    server: Client = await aiohttp_client(app)
    secret, _ = await apikeys.create(app[DEPS].store, tenant="acme", role="bot", now_ms=0)
    caplog.set_level(logging.INFO, logger="handoff.client")
    async with HandoffClient(url_of(server), secret,
                             retry=RetryPolicy(attempts=8, total=30.0)) as bot:
        await bot.append_turns("web-1", {"customer": CHAT, "channel": "chat",
                                         "turns": [turn("t1", "before")]})
        own_redis.kill()
        write = asyncio.create_task(bot.append_turns("web-1", {"turns": [turn("t2", "during")]}))
        await asyncio.sleep(1.0)
        assert not write.done(), "the call must wait for Redis, not fail"
        await asyncio.to_thread(own_redis.start)
        result = await asyncio.wait_for(write, 25)
    assert result.appended == 1
    assert any(": 503; retry" in m for m in caplog.messages), caplog.messages


@pytest.mark.skipif(CLUSTER, reason="stops its own single Redis server")
async def test_a_redis_outage_longer_than_the_budget_raises_the_503(
        aiohttp_client: Any, own_redis: RedisServer) -> None:
    app = create_app(Settings(redis_url=own_redis.url, redis_timeout=0.5, sweep_seconds=60))
    server: Client = await aiohttp_client(app)
    secret, _ = await apikeys.create(app[DEPS].store, tenant="acme", role="agent", now_ms=0)
    own_redis.kill()
    async with HandoffClient(url_of(server), secret,
                             retry=RetryPolicy(attempts=3, total=1.0)) as agent:
        with pytest.raises(UnavailableError) as away:
            await agent.list_handoffs()
    assert away.value.status == 503 and away.value.retry_after is not None
    assert away.value.retry_after >= 1


async def test_a_msgpack_client_writes_and_reads_the_same_records(client: Client,
                                                                 keys: Keys) -> None:
    url = url_of(client)
    async with HandoffClient(url, keys.secrets[("acme", "bot")], msgpack=True) as bot, \
            HandoffClient(url, keys.secrets[("acme", "agent")], msgpack=True) as agent:
        written = await bot.append_turns("web-1", {"customer": CHAT, "channel": "chat",
                                                   "turns": [turn("t1", "hola")]})
        brief = (await agent.context(written.customer_id)).brief
        with pytest.raises(NotFoundError):
            await agent.get_handoff("ho_missing")
    assert [(t.id, t.text) for t in brief.turns] == [("t1", "hola")]
