"""A small world to test against, the table of every /v1 route, and HTTP helpers.

The world is the product's own story: a visitor chats with the bot, asks for a human, gets a
continuation code, calls the phone line, the IVR redeems the code and verifies the account with a
PIN, and the bot asks for a second hand-off (whose code nobody has used yet).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy

from tests.conftest import Keys

ROLES = ("bot", "ivr", "agent", "supervisor", "admin")
PROBLEM = "application/problem+json"

CONVERSATION = "web-7f3a"
CALL = "CA9f2"
VISITOR = "visitor-42"
EMAIL = "ana@example.com"
PHONE = "+15550104477"
ACCOUNT = "88812345"
TS = "2026-11-23T10:02:00Z"

Json = dict[str, Any]


def chat_customer(visitor: str = VISITOR, *extra: Json) -> Json:
    return {"identities": [{"kind": "chat", "value": visitor}, *extra]}


def phone_customer(phone: str = PHONE) -> Json:
    return {"identities": [{"kind": "phone", "value": phone}]}


def turn(turn_id: str, text: str, role: str = "customer", **more: Any) -> Json:
    return {"id": turn_id, "role": role, "text": text, "ts": TS, **more}


# Bodies each route accepts in the world below (a later turn, a new fact, ...).
TURNS_BODY: Json = {"customer": chat_customer(), "channel": "chat", "source": "acme-bot",
                    "turns": [turn("t9", "Still there?")]}
FACTS_BODY: Json = {"facts": {"callback": "after 5pm"}}
VERIFY_BODY: Json = {"customer": phone_customer(), "conversation_id": CALL, "channel": "voice",
                     "identity": {"kind": "account", "value": ACCOUNT}, "method": "pin",
                     "level": "high"}
HANDOFF_BODY: Json = {"customer": chat_customer(), "conversation_id": CONVERSATION,
                      "channel": "chat", "reason": "customer_request", "queue": "billing",
                      "summary": "Charged twice for order A-1001"}
REDEEM_BODY: Json = {"customer": phone_customer("+15550109999"), "conversation_id": "CA77",
                     "channel": "voice", "source": "acme-ivr"}
ACCEPT_BODY: Json = {"agent_id": "agent-7"}
RESOLVE_BODY: Json = {"agent_id": "agent-7", "note": "refunded"}
HAND_BACK_BODY: Json = {"note": "refunded; confirmation sent", "to": "bot", "outcome": "resolved"}
CANCEL_BODY: Json = {"note": "the customer hung up"}
KEY_BODY: Json = {"role": "bot", "name": "night-bot"}
ROTATE_BODY: Json = {"grace_seconds": 60}
# An event type nothing in the world emits: no delivery is ever attempted to this host.
WEBHOOK_BODY: Json = {"url": "https://hooks.example.com/handoff", "events": ["handoff.expired"],
                      "description": "desk"}
TOKEN_BODY: Json = {"agent_id": "agent-7", "minutes": 30}
REASK_BODY: Json = {"text": "Can I have your account number?"}
ACK_BODY: Json = {"supervisor_id": "sup-dana"}


@dataclass(frozen=True)
class Route:
    """One /v1 route: who may call it, a body it accepts, and what another tenant gets.

    `path` placeholders: {conversation}, {ref}, {handoff}, {code}, {key}, {webhook},
    {delivery}, {alert}. `foreign` says what a
    key of another tenant gets when it names this tenant's data: "404", an "empty" list (for each
    of `queries`), a "separate" customer of its own (writes that create on first sight), only
    its "own" records (API keys), a "stream" of its own tenant's queue events, an "alerts"
    stream of its own tenant's alerts, a panel "token" of its own tenant that finds nothing
    of this one, or only its own tenant's "figures" (effort KPIs).
    """

    method: str
    path: str
    roles: tuple[str, ...]
    body: Json | None = None
    foreign: str = "404"
    status: int = 200
    queries: tuple[str, ...] = ("",)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def shape(self) -> str:
        """The path with placeholders blanked, to compare with the OpenAPI document's."""
        return self.method + " " + "/".join("{}" if p.startswith("{") else p
                                            for p in self.path.split("/"))

    @property
    def is_stream(self) -> bool:
        return self.path.endswith("/events")


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/conversations/{conversation}/turns", ("bot", "ivr", "agent"), TURNS_BODY,
          foreign="separate"),
    Route("PUT", "/v1/customers/{ref}/facts", ("bot", "ivr", "agent"), FACTS_BODY),
    Route("POST", "/v1/verifications", ("ivr", "agent"), VERIFY_BODY, foreign="separate"),
    Route("POST", "/v1/handoffs", ("bot", "ivr"), HANDOFF_BODY, foreign="separate", status=201),
    Route("GET", "/v1/handoffs", ("agent", "supervisor"), foreign="empty",
          queries=("", "?queue=billing", "?status=accepted&queue=billing")),
    Route("GET", "/v1/handoffs/events", ("agent", "supervisor"), foreign="stream"),
    Route("GET", "/v1/handoffs/{handoff}", ("bot", "ivr", "agent")),
    Route("POST", "/v1/handoffs/{handoff}/accept", ("agent",), ACCEPT_BODY),
    Route("POST", "/v1/handoffs/{handoff}/resolve", ("agent",), RESOLVE_BODY),
    Route("POST", "/v1/handoffs/{handoff}/hand-back", ("agent",), HAND_BACK_BODY),
    Route("POST", "/v1/handoffs/{handoff}/cancel", ("bot", "ivr"), CANCEL_BODY),
    Route("POST", "/v1/continuations/{code}/redeem", ("ivr",), REDEEM_BODY),
    Route("GET", "/v1/customers/{ref}/context", ("bot", "ivr", "agent", "supervisor")),
    Route("GET", "/v1/customers/{ref}/turns", ("agent", "supervisor")),
    Route("GET", "/v1/customers/{ref}/events", ("bot", "ivr", "agent")),
    Route("DELETE", "/v1/customers/{ref}", ("admin",)),
    Route("GET", "/v1/admin/audit", ("admin",), foreign="empty",
          queries=("", "?customer={ref}")),
    Route("GET", "/v1/admin/keys", ("admin",), foreign="own"),
    Route("POST", "/v1/admin/keys", ("admin",), KEY_BODY, foreign="own", status=201),
    Route("DELETE", "/v1/admin/keys/{key}", ("admin",)),
    Route("POST", "/v1/admin/keys/{key}/rotate", ("admin",), ROTATE_BODY, status=201),
    Route("GET", "/v1/admin/webhooks", ("admin",), foreign="empty"),
    Route("POST", "/v1/admin/webhooks", ("admin",), WEBHOOK_BODY, foreign="own", status=201),
    Route("DELETE", "/v1/admin/webhooks/{webhook}", ("admin",)),
    Route("POST", "/v1/admin/webhooks/{webhook}/rotate", ("admin",)),
    Route("GET", "/v1/admin/webhooks/{webhook}/dead-letters", ("admin",)),
    Route("POST", "/v1/admin/webhooks/{webhook}/dead-letters/{delivery}/redeliver", ("admin",),
          status=202),
    Route("POST", "/v1/desk/tokens", ("agent", "supervisor"), TOKEN_BODY, foreign="token"),
    Route("POST", "/v1/customers/{ref}/reask-check", ("bot", "ivr", "agent"), REASK_BODY),
    Route("GET", "/v1/whoami", ROLES, foreign="own"),
    Route("GET", "/v1/kpis", ("supervisor", "admin"), foreign="figures"),
    Route("GET", "/v1/alerts", ("supervisor",), foreign="empty",
          queries=("", "?status=acknowledged")),
    Route("GET", "/v1/alerts/events", ("supervisor",), foreign="alerts"),
    Route("POST", "/v1/alerts/{alert}/ack", ("supervisor",), ACK_BODY),
)
WRITES = tuple(r for r in ROUTES if r.body is not None)
BY_ID = {r.id: r for r in ROUTES}


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    headers: CIMultiDictProxy[str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


async def call(client: TestClient[Any, Any], method: str, path: str, *,
               headers: dict[str, str] | None = None, json_body: Any = None,
               data: Any = None) -> Answer:
    """One request, read whole. Whatever was sent, the service must not answer 5xx."""
    async with client.request(method, path, headers=headers, json=json_body, data=data) as r:
        raw = await r.read()
        answer = Answer(r.status, r.content_type, r.headers, raw)
    assert answer.status < 500, f"{method} {path} answered {answer.status}: {raw[:300]!r}"
    return answer


def assert_problem(answer: Answer, status: int) -> Json:
    """An RFC 9457 problem of `status`; answers its body."""
    assert answer.status == status, f"expected {status}, got {answer.status}: {answer.raw[:300]!r}"
    assert answer.content_type == PROBLEM
    body: Json = answer.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str) and body[member], f"{member} missing: {body}"
    return body


def ref(value: str) -> str:
    """A `{ref}` as it goes in a path: URL-encoded."""
    return quote(value, safe="")


@dataclass
class World:
    """What one tenant's story left behind."""

    customer_id: str
    handoff_id: str
    code: str
    first_handoff_id: str
    key_id: str
    refs: list[str] = field(default_factory=list)
    webhook_id: str = "wh_" + "0" * 26
    # A well-formed id of no delivery: the world's webhook never fails.
    delivery_id: str = "dlv_" + "0" * 26
    # The caller's third call about it raised a supervisor alert.
    alert_id: str = "al_" + "0" * 26

    def path(self, route: Route, *, customer: str | None = None, query: str = "") -> str:
        return (route.path + query).format(
            conversation=CONVERSATION, handoff=self.handoff_id, code=self.code,
            key=self.key_id, ref=ref(customer or self.customer_id), webhook=self.webhook_id,
            delivery=self.delivery_id, alert=self.alert_id)


async def ok(client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str],
             body: Json | None = None, status: int = 200) -> Json:
    answer = await call(client, method, path, headers=headers, json_body=body)
    assert answer.status == status, f"{method} {path}: {answer.status} {answer.raw[:300]!r}"
    result: Json = answer.json()
    return result


async def build_world(client: TestClient[Any, Any], keys: Keys, tenant: str = "acme") -> World:
    bot, ivr = keys("bot", tenant), keys("ivr", tenant)
    chat = await ok(client, "POST", f"/v1/conversations/{CONVERSATION}/turns", bot, {
        "customer": chat_customer(VISITOR, {"kind": "email", "value": EMAIL}),
        "channel": "chat", "source": "acme-bot",
        "turns": [turn("t1", "I was charged twice"), turn("t2", "Which order?", "bot")],
        "facts": {"order_number": "A-1001"}})
    first = await ok(client, "POST", "/v1/handoffs", bot,
                     {**HANDOFF_BODY, "continuation": True}, status=201)
    await ok(client, "POST", f"/v1/continuations/{first['continuation_code']}/redeem", ivr, {
        "customer": phone_customer(), "conversation_id": CALL, "channel": "voice",
        "source": "acme-ivr"})
    await ok(client, "POST", "/v1/verifications", ivr, VERIFY_BODY)
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", ivr, {
        "customer": phone_customer(), "channel": "voice", "source": "acme-ivr",
        "turns": [turn("c1", "Press 1 for billing", "system"), turn("c2", "1"),
                  turn("c3", "This is the third time I call about this")]})
    second = await ok(client, "POST", "/v1/handoffs", bot,
                      {**HANDOFF_BODY, "priority": 1, "continuation": True}, status=201)
    spare = await ok(client, "POST", "/v1/admin/keys", keys("admin", tenant),
                     {"role": "agent", "name": "spare"}, status=201)
    hook = await ok(client, "POST", "/v1/admin/webhooks", keys("admin", tenant), WEBHOOK_BODY,
                    status=201)
    (alert,) = (await ok(client, "GET", "/v1/alerts", keys("supervisor", tenant)))["items"]
    cus = chat["customer_id"]
    return World(customer_id=cus, handoff_id=second["id"], code=second["continuation_code"],
                 first_handoff_id=first["id"], key_id=spare["id"],
                 refs=[cus, f"chat:{VISITOR}", f"phone:{PHONE}", f"account:{ACCOUNT}"],
                 webhook_id=hook["id"], alert_id=alert["id"])


async def brief_of(client: TestClient[Any, Any], keys: Keys, customer: str,
                   tenant: str = "acme") -> Json:
    """An agent's context brief, without the moment it was generated."""
    brief = await ok(client, "GET", f"/v1/customers/{ref(customer)}/context",
                     keys("agent", tenant))
    brief.pop("generated_at")
    return brief


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for a state that lives in Redis, in another app or on the network (no event to wait
    on there)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the state is not ours to signal)
            await asyncio.sleep(0.02)
