"""`handoff demo`: a web chat becomes a phone call becomes an agent who asks for nothing again.

Everything goes through the public HTTP API, exactly as a bot, an IVR and an agent desk would.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.embedded import EmbeddedRedis
from handoff.services import apikeys
from handoff.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base.rstrip("/")

    async def call(self, method: str, path: str, key: str, body: dict[str, Any] | None = None,
                   expect: int = 200) -> dict[str, Any]:
        async with self.http.request(method, self.base + path, json=body,
                                     headers={"Authorization": f"Bearer {key}"}) as r:
            data: dict[str, Any] = await r.json(content_type=None)
            if r.status != expect:
                raise RuntimeError(f"{method} {path} answered {r.status}: {data}")
            return data


async def scenario(client: Client, keys: dict[str, str]) -> dict[str, Any]:
    """The seed scenario; answers what the accepting agent received."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)

    def at(minutes: float) -> str:
        return (start + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    chat = {"identities": [{"kind": "chat", "value": "visitor-42"},
                           {"kind": "email", "value": "Ana@Example.com"}]}
    await client.call("POST", "/v1/conversations/web-7f3a/turns", keys["bot"], {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [
            {"id": "t1", "role": "customer", "text": "I was charged twice", "ts": at(0)},
            {"id": "t2", "role": "bot", "text": "Sorry about that! Which order?", "ts": at(0.1)},
            {"id": "t3", "role": "customer", "text": "Order A-1001. I want to talk to a human",
             "ts": at(0.5)},
        ],
        "facts": {"order_number": "A-1001", "issue": "double charge"}})
    handoff = await client.call("POST", "/v1/handoffs", keys["bot"], {
        "customer": {"identities": [{"kind": "chat", "value": "visitor-42"}]},
        "conversation_id": "web-7f3a", "channel": "chat", "source": "acme-bot",
        "reason": "customer_request", "priority": 2, "queue": "billing",
        "intent": "billing.double_charge", "summary": "Charged twice for order A-1001",
        "continuation": True}, expect=201)
    code = handoff["continuation_code"]
    await client.call("POST", "/v1/conversations/web-7f3a/turns", keys["bot"], {
        "turns": [{"id": "t4", "role": "bot", "ts": at(1),
                   "text": f"Call us on 0800 123 456 and enter {code}"}]})

    caller = {"identities": [{"kind": "phone", "value": "+1 (555) 010-4477"}]}
    await client.call("POST", f"/v1/continuations/{code}/redeem", keys["ivr"], {
        "customer": caller, "conversation_id": "CA9f2", "channel": "voice",
        "source": "acme-ivr"})
    await client.call("POST", "/v1/verifications", keys["ivr"], {
        "customer": {"identities": [{"kind": "phone", "value": "+15550104477"}]},
        "identity": {"kind": "account", "value": "88812345"}, "method": "pin", "level": "high",
        "channel": "voice", "conversation_id": "CA9f2", "source": "acme-ivr",
        "expires_in": 1800})
    # The call is happening now: its turns follow the redemption and the verification.
    call = datetime.now(UTC).replace(microsecond=0)

    def during_call(seconds: int) -> str:
        return (call + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    await client.call("POST", "/v1/conversations/CA9f2/turns", keys["ivr"], {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [
            {"id": "c1", "role": "system", "text": "Caller entered continuation code",
             "ts": during_call(0)},
            {"id": "c2", "role": "system", "text": "Account verified by PIN",
             "ts": during_call(1)},
            {"id": "c3", "role": "customer", "text": "Agent please", "ts": during_call(2)},
        ]})
    return await client.call("POST", f"/v1/handoffs/{handoff['id']}/accept", keys["agent"],
                             {"agent_id": "agent-7"})


def _clock(iso: str | None) -> str:
    return iso[11:16] if iso else "--:--"


def format_brief(accepted: dict[str, Any]) -> str:
    """The brief as an agent would want to read it."""
    ho, ctx = accepted["handoff"], accepted["context"]
    lines = [f"Hand-off {ho['id']}  queue {ho['queue']}  priority {ho['priority']}  "
             f"reason {ho['reason']}  -> accepted by {ho['agent_id']}", ""]
    lines.append(f"Customer {ctx['customer']['id']}")
    verified = {(v["identity"]["kind"], v["identity"]["value"]): v
                for v in ctx["verifications"] if not v["expired"]}
    for ident in ctx["customer"]["identities"]:
        v = verified.get((ident["kind"], ident["value"]))
        if v:
            how = (f"VERIFIED by {v['method']} ({v['level']}) on {v['channel']} at "
                   f"{_clock(v['verified_at'])}, valid until {_clock(v['expires_at'])}")
        else:
            how = ("linked" if ident["linked"] else "stated, not verified") + \
                  f" on {ident.get('channel') or '?'}"
        lines.append(f"  {ident['kind']:<8} {ident['value']:<22} {how}")
    lines += ["", "Facts"]
    for key, fact in ctx["facts"].items():
        lines.append(f"  {key:<14} {fact['value']!s:<20} "
                     f"{'verified' if fact['verified'] else 'said'} on {fact['channel']} "
                     f"at {_clock(fact['at'])}")
    lines += ["", "Do not ask for: " + ", ".join(ctx["do_not_ask"])]
    journey = "  ->  ".join(f"{j['channel']} {j['conversation_id']} {_clock(j['started_at'])}"
                            for j in ctx["journey"])
    lines += [f"Journey: {journey}", f"Summary: {ctx['summary']}"]
    if ctx["flags"]:
        lines.append("Flags: " + "; ".join(f"{f['kind']}: {f['term']} (turn {f['turn_id']})"
                                           for f in ctx["flags"]))
    lines += ["", "What they already said"]
    for t in ctx["turns"]:
        lines.append(f"  {_clock(t['ts'])} {t['channel']:<5} {t['role']:<8} {t['text']}")
    return "\n".join(lines)


async def _run_local(settings: Settings, redis_url: str) -> dict[str, Any]:
    """The scenario against a server started here, for the demo only, on `redis_url`."""
    app = create_app(settings.model_copy(update={"redis_url": redis_url}))
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        store = app[DEPS].store
        keys = {role: (await apikeys.create(store, tenant="acme", role=role, name="demo",
                                            now_ms=0))[0]
                for role in ("bot", "ivr", "agent")}
        async with aiohttp.ClientSession() as http:
            return await scenario(Client(http, f"http://127.0.0.1:{port}"), keys)
    finally:
        await runner.cleanup()


async def _run_remote(settings: Settings, url: str, redis_url: str) -> dict[str, Any]:
    """The scenario against a running server; keys are minted in its store at `redis_url`."""
    from handoff.cli import _create_key

    keys = {role: (await _create_key(redis_url, settings, "demo", role, "demo"))[0]
            for role in ("bot", "ivr", "agent")}
    async with aiohttp.ClientSession() as http:
        return await scenario(Client(http, url), keys)


def run(settings: Settings, url: str | None = None) -> int:
    """Play the scenario and print the brief. The store is started (and stopped) here, before
    and after the event loop: a temporary one for a local demo, or the server's own."""
    if url:
        from handoff.cli import _store_for

        embedded, redis_url = _store_for(settings)
        with embedded:
            accepted = asyncio.run(_run_remote(settings, url, redis_url))
    else:
        with tempfile.TemporaryDirectory(prefix="handoff-demo-", dir="/tmp") as tmp, \
                EmbeddedRedis(Path(tmp)) as redis:
            accepted = asyncio.run(_run_local(settings, redis.url))
    print(format_brief(accepted))
    return 0
