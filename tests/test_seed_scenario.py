"""The seed scenario: a web chat becomes a phone call becomes an agent who asks for nothing again.

Everything goes through the public HTTP API, as a chatbot, an IVR and an agent desk would.
"""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient

from tests.conftest import Keys


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def call(client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str],
               body: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    r = await client.request(method, path, headers=headers, json=body)
    assert r.status == expect, f"{method} {path}: {r.status} {await r.text()}"
    answer: dict[str, Any] = await r.json()
    return answer


async def test_a_chat_customer_who_calls_in_is_never_asked_to_repeat_themselves(
        client: TestClient[Any, Any], keys: Keys) -> None:
    visitor = f"visitor-{uuid.uuid4().hex[:12]}"
    chat_id = f"web-{uuid.uuid4().hex[:8]}"
    email = f"Ana.{uuid.uuid4().hex[:6]}@Example.com"
    order = f"A-{random.randint(1000, 9999)}"
    account = str(random.randint(10_000_000, 99_999_999))
    line = random.randint(0, 9999)
    dialled, e164 = f"+1 (555) 010-{line:04d}", f"+1555010{line:04d}"
    call_id = "CA9f2"
    chat_start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    call_start = chat_start + timedelta(minutes=12)

    # On the web: the bot learns who the visitor is, the order and the problem.
    chatted = await call(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), {
        "customer": {"identities": [{"kind": "chat", "value": visitor},
                                    {"kind": "email", "value": email}]},
        "channel": "chat", "source": "acme-bot",
        "turns": [
            {"id": "t1", "role": "customer", "text": "I was charged twice", "ts": at(chat_start)},
            {"id": "t2", "role": "bot", "text": "Sorry about that! Which order?",
             "ts": at(chat_start + timedelta(seconds=5))},
            {"id": "t3", "role": "customer", "text": f"Order {order}. Can I talk to a person?",
             "ts": at(chat_start + timedelta(seconds=30))}],
        "facts": {"order_number": order, "issue": "double charge"}})
    customer_id = chatted["customer_id"]

    # The customer asks for a human; the bot hands out a code to enter on the phone.
    handoff = await call(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": {"identities": [{"kind": "chat", "value": visitor}]},
        "conversation_id": chat_id, "channel": "chat", "source": "acme-bot",
        "reason": "customer_request", "priority": 2, "queue": "billing",
        "intent": "billing.double_charge", "summary": f"Charged twice for order {order}",
        "continuation": True}, expect=201)
    code = handoff["continuation_code"]
    assert handoff["status"] == "pending" and handoff["customer_id"] == customer_id
    assert len(code) == 6 and code.isdigit()

    # On the phone: the IVR redeems the code, verifies the account by PIN, logs the call.
    caller = {"identities": [{"kind": "phone", "value": dialled}]}
    redeemed = await call(client, "POST", f"/v1/continuations/{code}/redeem", keys("ivr"), {
        "customer": caller, "conversation_id": call_id, "channel": "voice",
        "source": "acme-ivr"})
    assert redeemed["customer_id"] == customer_id
    assert redeemed["handoff_id"] == handoff["id"]
    verified = await call(client, "POST", "/v1/verifications", keys("ivr"), {
        "customer": {"identities": [{"kind": "phone", "value": e164}]},
        "identity": {"kind": "account", "value": account}, "method": "pin", "level": "high",
        "channel": "voice", "conversation_id": call_id, "source": "acme-ivr",
        "expires_in": 1800})
    assert verified["verified"] is True and verified["customer_id"] == customer_id
    await call(client, "POST", f"/v1/conversations/{call_id}/turns", keys("ivr"), {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [
            {"id": "c1", "role": "system", "text": "Caller entered continuation code",
             "ts": at(call_start)},
            {"id": "c2", "role": "system", "text": "Account verified by PIN",
             "ts": at(call_start + timedelta(seconds=40))},
            {"id": "c3", "role": "customer", "text": "Agent please",
             "ts": at(call_start + timedelta(seconds=70))}]})

    # At the desk: the agent finds the hand-off in the billing queue and takes it.
    queue = await call(client, "GET", "/v1/handoffs?queue=billing", keys("agent"))
    assert [h["id"] for h in queue["items"]] == [handoff["id"]]
    accepted = await call(client, "POST", f"/v1/handoffs/{handoff['id']}/accept",
                          keys("agent"), {"agent_id": "agent-7"})

    # Everything the agent needs is in that one answer.
    assert accepted["handoff"]["status"] == "accepted"
    assert accepted["handoff"]["agent_id"] == "agent-7"
    brief = accepted["context"]
    assert brief["customer"]["id"] == customer_id

    (proof,) = brief["verifications"]
    assert proof["identity"] == {"kind": "account", "value": account}
    assert (proof["method"], proof["level"], proof["expired"]) == ("pin", "high", False)
    assert proof["channel"] == "voice"
    assert parse(proof["expires_at"]) - parse(proof["verified_at"]) == timedelta(seconds=1800)
    assert parse(proof["expires_at"]) > datetime.now(UTC)
    identities = {(i["kind"], i["value"]): i for i in brief["customer"]["identities"]}
    assert identities[("account", account)]["verified"] is True
    assert identities[("phone", e164)]["verified"] is False

    assert brief["facts"]["order_number"]["value"] == order
    assert brief["facts"]["order_number"]["channel"] == "chat"
    assert brief["facts"]["issue"]["value"] == "double charge"
    assert brief["summary"] == f"Charged twice for order {order}"

    assert [(t["channel"], t["conversation_id"], t["id"]) for t in brief["turns"]] == [
        ("chat", chat_id, "t1"), ("chat", chat_id, "t2"), ("chat", chat_id, "t3"),
        ("voice", call_id, "c1"), ("voice", call_id, "c2"), ("voice", call_id, "c3")]
    assert brief["turns"][0]["text"] == "I was charged twice"
    stamps = [parse(t["ts"]) for t in brief["turns"]]
    assert stamps == sorted(stamps)

    assert [(j["channel"], j["conversation_id"]) for j in brief["journey"]] == [
        ("chat", chat_id), ("voice", call_id)]
    assert {"account", "order_number", "email", "phone"} <= set(brief["do_not_ask"])

    # The verified account and the caller's number both lead to the same customer.
    for ref in (f"account:{account}", f"phone:{e164}"):
        context = await call(client, "GET", f"/v1/customers/{quote(ref, safe=':')}/context",
                             keys("agent"))
        assert context["customer"]["id"] == customer_id, ref


def test_the_demo_command_prints_what_the_agent_would_read() -> None:
    run = subprocess.run([sys.executable, "-m", "handoff", "demo"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "88812345" in out and "VERIFIED by pin (high)" in out
    assert "A-1001" in out
    assert "chat  customer I was charged twice" in out
    assert "voice customer Agent please" in out
    assert "Do not ask for:" in out
