"""A known week of contact-centre traffic for the effort KPI tests, played through the HTTP
API on a clock the test moves (see tests/test_kpis.py for the story and its figures)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.kernel.settings import Settings
from handoff.services import apikeys
from tests.conftest import Keys
from tests.scenario import Json, ok, phone_customer

Client = TestClient[Any, Any]
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
READ_AT = MONDAY + timedelta(days=6, hours=23, minutes=30)
ROLES = ("bot", "ivr", "agent", "supervisor", "admin")


class Clock:
    """What the service takes for now: moved by the test, never by itself."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> int:
        return int(self.moment.timestamp() * 1000)

    def at(self, day: int, clock: str) -> str:
        """Move to `clock` (HH:MM[:SS]) on day `day` of the week (0 is Monday); its ISO form."""
        parts = [int(p) for p in clock.split(":")]
        self.moment = MONDAY + timedelta(days=day, hours=parts[0], minutes=parts[1],
                                         seconds=parts[2] if len(parts) > 2 else 0)
        return self.moment.isoformat().replace("+00:00", "Z")


@dataclass
class Week:
    client: Client
    keys: Keys
    clock: Clock
    customers: dict[str, str]


class Traffic:
    """The calls bots, IVRs and agents make, at the clock's time."""

    def __init__(self, client: Client, keys: Keys, clock: Clock) -> None:
        self.client, self.keys, self.clock = client, keys, clock
        self.customers: dict[str, str] = {}
        self.turns = 0

    def now(self) -> str:
        return self.clock.moment.isoformat().replace("+00:00", "Z")

    def _turn(self, role: str, text: str) -> Json:
        self.turns += 1
        return {"id": f"t{self.turns}", "role": role, "text": text, "ts": self.now()}

    async def chat(self, name: str, conversation: str, email: bool = False,
                   text: str = "I need a person") -> None:
        identities: list[Json] = [{"kind": "chat", "value": f"visitor-{name}"}]
        if email:
            identities.append({"kind": "email", "value": f"{name}@example.com"})
        posted = await ok(self.client, "POST", f"/v1/conversations/{conversation}/turns",
                          self.keys("bot"), {
                              "customer": {"identities": identities}, "channel": "chat",
                              "source": "acme-bot", "turns": [self._turn("customer", text)]})
        self.customers[name] = posted["customer_id"]

    async def alert(self, name: str) -> str:
        """The open alert about the customer (it is raised just after the turn is stored)."""
        customer = self.customers[name]
        async with asyncio.timeout(10):
            while True:
                listed = await ok(self.client, "GET", "/v1/alerts?limit=500",
                                  self.keys("supervisor"))
                found = [a["id"] for a in listed["items"] if a["customer_id"] == customer]
                if found:
                    return found[0]
                await asyncio.sleep(0.02)

    async def acknowledge(self, alert_id: str) -> None:
        await ok(self.client, "POST", f"/v1/alerts/{alert_id}/ack", self.keys("supervisor"),
                 {"supervisor_id": "sup-1"})

    async def request(self, name: str, conversation: str, queue: str, *,
                      continuation: bool = False, tenant: str = "acme") -> Json:
        handoff: Json = await ok(self.client, "POST", "/v1/handoffs", self.keys("bot", tenant), {
            "customer": {"identities": [{"kind": "chat", "value": f"visitor-{name}"}]},
            "conversation_id": conversation, "channel": "chat", "reason": "customer_request",
            "queue": queue, "continuation": continuation}, status=201)
        return handoff

    async def call_in(self, code: str, phone: str, call_id: str) -> None:
        await ok(self.client, "POST", f"/v1/continuations/{code}/redeem", self.keys("ivr"), {
            "customer": phone_customer(phone), "conversation_id": call_id, "channel": "voice",
            "source": "acme-ivr"})

    async def verify(self, phone: str, call_id: str, account: str) -> None:
        await ok(self.client, "POST", "/v1/verifications", self.keys("ivr"), {
            "customer": phone_customer(phone), "conversation_id": call_id, "channel": "voice",
            "identity": {"kind": "account", "value": account}, "method": "pin",
            "level": "high", "expires_in": 1800})

    async def accept(self, handoff: Json, agent: str, status: int = 200) -> None:
        await ok(self.client, "POST", f"/v1/handoffs/{handoff['id']}/accept",
                 self.keys("agent"), {"agent_id": agent}, status=status)

    async def end(self, handoff: Json, how: str) -> None:
        body: Json = {"note": "done"}
        role = "bot" if how == "cancel" else "agent"
        if how == "hand-back":
            body = {"note": "sorted", "to": "bot", "outcome": "resolved"}
        await ok(self.client, "POST", f"/v1/handoffs/{handoff['id']}/{how}", self.keys(role),
                 body)

    async def warned(self, name: str, text: str) -> list[str]:
        checked = await ok(self.client, "POST",
                           f"/v1/customers/{self.customers[name]}/reask-check",
                           self.keys("agent"), {"text": text})
        return [r["topic"] for r in checked["reasks"]]

    async def agent_says(self, conversation: str, text: str) -> None:
        await ok(self.client, "POST", f"/v1/conversations/{conversation}/turns",
                 self.keys("agent"), {"turns": [self._turn("agent", text)]})


async def play_week(t: Traffic) -> None:
    c = t.clock
    # Monday
    c.at(0, "09:00")
    await t.chat("ana", "web-a")
    ana1 = await t.request("ana", "web-a", "billing", continuation=True)
    c.at(0, "09:02")
    await t.call_in(ana1["continuation_code"], "+15550000001", "CA-a")
    c.at(0, "09:03")
    await t.verify("+15550000001", "CA-a", "10010001")
    c.at(0, "09:04")
    await t.accept(ana1, "agent-1")
    c.at(0, "09:04:30")
    assert await t.warned("ana", "Can I have your account number?") == ["account"]
    c.at(0, "09:05")
    await t.agent_says("web-a", "Can I have your account number?")
    c.at(0, "09:10")
    await t.end(ana1, "hand-back")
    c.at(0, "14:00")
    await t.chat("ben", "web-b")
    ben = await t.request("ben", "web-b", "billing")
    c.at(0, "14:20")
    await t.end(ben, "cancel")
    # Tuesday
    c.at(1, "10:00")
    await t.chat("cleo", "web-c", email=True)
    cleo = await t.request("cleo", "web-c", "fraud")
    c.at(1, "10:00:30")
    await t.accept(cleo, "agent-2")
    c.at(1, "10:01")
    assert await t.warned("cleo", "What's your email address?") == ["email"]
    c.at(1, "10:10")
    await t.chat("cleo", "web-c", text="This is unacceptable")
    await t.alert("cleo")  # nobody acknowledges it
    c.at(1, "10:30")
    await t.end(cleo, "resolve")
    # Wednesday
    c.at(2, "08:00")
    await t.chat("ana", "web-a2")
    ana2 = await t.request("ana", "web-a2", "billing")
    c.at(2, "08:02")
    await t.accept(ana2, "agent-1")
    c.at(2, "08:03")
    await t.agent_says("web-a2", "Can I have your phone number?")
    # Thursday
    c.at(3, "22:00")
    await t.chat("dan", "web-d")
    dan = await t.request("dan", "web-d", "billing")
    c.at(3, "23:30")
    await t.accept(dan, "agent-3", status=409)
    # Sunday
    c.at(6, "10:00")
    await t.chat("eve", "web-e", email=True)
    eve = await t.request("eve", "web-e", "billing")
    await t.chat("globex-1", "web-g1")
    await t.request("globex-1", "web-g1", "billing", tenant="globex")
    c.at(6, "10:00:10")
    await t.chat("finn", "web-f", email=True)
    finn = await t.request("finn", "web-f", "fraud")
    c.at(6, "10:01:40")
    await t.accept(eve, "agent-3")
    c.at(6, "10:15:10")
    await t.accept(finn, "agent-2")
    c.at(6, "10:05")
    await t.chat("eve", "web-e", text="I will call my lawyer")
    eve_alert = await t.alert("eve")
    c.at(6, "10:07")
    await t.acknowledge(eve_alert)
    c.at(6, "10:20")
    assert await t.warned("eve", "Can I have your email address?") == ["email"]
    c.at(6, "10:21")
    assert await t.warned("eve", "Can I have your email address?") == ["email"]
    c.at(6, "10:30")
    await t.agent_says("web-e", "Can I have your email address?")
    c.at(6, "11:00")
    await t.end(eve, "hand-back")
    c.at(6, "11:58")
    assert await t.warned("finn", "What's your email address?") == ["email"]
    c.at(6, "12:01")
    await t.agent_says("web-f", "What's your email address?")
    c.at(6, "15:00")
    await t.chat("hana", "web-h", email=True)
    await t.agent_says("web-h", "Can I have your email address?")
    c.at(6, "23:10")
    await t.chat("gus", "web-gus")
    gus = await t.request("gus", "web-gus", "billing")
    c.at(6, "23:20")
    await t.end(gus, "cancel")
    c.moment = READ_AT


def figures(**given: Any) -> Json:
    """Every figure of a bucket: nothing happened, except what `given` says."""
    nothing: Json = {
        "requested": 0, "accepted": 0, "expired": 0, "cancelled": 0, "handed_back": 0,
        "resolved": 0, "time_to_accept_p50_seconds": None, "time_to_accept_p90_seconds": None,
        "verified_at_accept": 0, "verification_carried": None, "reasks": 0,
        "reasks_per_100_accepted": None, "reask_warnings": 0, "reask_warnings_heeded": 0,
        "reask_warnings_sent_anyway": 0, "by_fact": {}, "channel_switches": 0,
        "channel_switches_per_handoff": None, "journey_steps_per_handoff": None,
        "repeat_contacts": 0, "repeat_contact_share": None, "alerts_raised": 0,
        "alerts_acknowledged": 0, "time_to_acknowledge_p50_seconds": None,
        "time_to_acknowledge_p90_seconds": None}
    assert set(given) <= set(nothing), set(given) - set(nothing)
    return nothing | given


def fact(reasks: int, per_100: float | None, warnings: int = 0, heeded: int = 0,
         sent_anyway: int = 0) -> Json:
    return {"reasks": reasks, "reasks_per_100_accepted": per_100, "warnings": warnings,
            "heeded": heeded, "sent_anyway": sent_anyway}


def without_times(bucket: Json) -> Json:
    return {k: v for k, v in bucket.items() if k not in ("start", "end")}


async def fresh_server(aiohttp_client: Any, settings: Settings) -> Traffic:
    """A server whose clock the test moves, with keys of every role of acme and globex (the
    background expiry sweep is off: the hand-off that expires does so when an agent tries to
    take it)."""
    clock = Clock(MONDAY)
    app = create_app(settings.model_copy(update={"sweep_seconds": 3600.0}), clock=clock)
    client: Client = await aiohttp_client(app)
    made = Keys()
    for tenant in ("acme", "globex"):
        for role in ROLES:
            secret, _ = await apikeys.create(client.app[DEPS].store, tenant=tenant, role=role,
                                             name="test", now_ms=clock())
            made.secrets[(tenant, role)] = secret
    return Traffic(client, made, clock)


@pytest.fixture
async def week(aiohttp_client: Any, settings: Settings) -> Week:
    """The week above, played on a fresh server."""
    traffic = await fresh_server(aiohttp_client, settings)
    await play_week(traffic)
    return Week(traffic.client, traffic.keys, traffic.clock, traffic.customers)
