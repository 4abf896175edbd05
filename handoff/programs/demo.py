"""`handoff demo`: a web chat becomes a phone call becomes an agent who asks for nothing again.

Everything goes through the public HTTP API with `handoff.client`, exactly as a bot, an IVR and
an agent desk would.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.client import HandoffClient
from handoff.kernel.settings import Settings
from handoff.programs.localstore import command_store, create_key
from handoff.programs.terminal import brief_text, handoff_line
from handoff.runtime.embedded import EmbeddedRedis
from handoff.services import apikeys
from schemas.brief import AcceptResult


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scenario(url: str, keys: dict[str, str]) -> AcceptResult:
    """The seed scenario, each system with its own client and key; answers what the accepting
    agent received."""
    async with HandoffClient(url, keys["bot"]) as bot, \
            HandoffClient(url, keys["ivr"]) as ivr, \
            HandoffClient(url, keys["agent"], agent_id="agent-7") as agent:
        return await _play(bot, ivr, agent)


async def _play(bot: HandoffClient, ivr: HandoffClient, agent: HandoffClient) -> AcceptResult:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)

    def at(minutes: float) -> str:
        return (start + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    chat = {"identities": [{"kind": "chat", "value": "visitor-42"},
                           {"kind": "email", "value": "Ana@Example.com"}]}
    await bot.append_turns("web-7f3a", {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [
            {"id": "t1", "role": "customer", "text": "I was charged twice", "ts": at(0)},
            {"id": "t2", "role": "bot", "text": "Sorry about that! Which order?", "ts": at(0.1)},
            {"id": "t3", "role": "customer", "text": "Order A-1001. I want to talk to a human",
             "ts": at(0.5)},
        ],
        "facts": {"order_number": "A-1001", "issue": "double charge"}})
    handoff = await bot.request_handoff({
        "customer": {"identities": [{"kind": "chat", "value": "visitor-42"}]},
        "conversation_id": "web-7f3a", "channel": "chat", "source": "acme-bot",
        "reason": "customer_request", "priority": 2, "queue": "billing",
        "intent": "billing.double_charge", "summary": "Charged twice for order A-1001",
        "continuation": True}, idempotency_key="web-7f3a-1")
    code = handoff.continuation_code
    assert code is not None, "a continuation was asked for"
    await bot.append_turns("web-7f3a", {"turns": [
        {"id": "t4", "role": "bot", "ts": at(1),
         "text": f"Call us on 0800 123 456 and enter {code}"}]})

    caller = {"identities": [{"kind": "phone", "value": "+1 (555) 010-4477"}]}
    await ivr.redeem(code, {"customer": caller, "conversation_id": "CA9f2", "channel": "voice",
                            "source": "acme-ivr"})
    await ivr.verify({
        "customer": {"identities": [{"kind": "phone", "value": "+15550104477"}]},
        "identity": {"kind": "account", "value": "88812345"}, "method": "pin", "level": "high",
        "channel": "voice", "conversation_id": "CA9f2", "source": "acme-ivr",
        "expires_in": 1800})
    # The call is happening now: its turns follow the redemption and the verification.
    call = datetime.now(UTC).replace(microsecond=0)

    def during_call(seconds: int) -> str:
        return (call + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    await ivr.append_turns("CA9f2", {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [
            {"id": "c1", "role": "system", "text": "Caller entered continuation code",
             "ts": during_call(0)},
            {"id": "c2", "role": "system", "text": "Account verified by PIN",
             "ts": during_call(1)},
            {"id": "c3", "role": "customer", "text": "Agent please", "ts": during_call(2)},
        ]})
    return await agent.accept(handoff.id, "agent-7")


def format_brief(accepted: AcceptResult, now: datetime | None = None) -> str:
    """The accepted hand-off and its brief as an agent would want to read them."""
    return "\n\n".join([handoff_line(accepted.handoff),
                        brief_text(accepted.context, now=now or datetime.now(UTC))])


async def _run_local(settings: Settings, redis_url: str) -> AcceptResult:
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
        return await scenario(f"http://127.0.0.1:{port}", keys)
    finally:
        await runner.cleanup()


async def _run_remote(settings: Settings, url: str, redis_url: str) -> AcceptResult:
    """The scenario against a running server; keys are minted in its store at `redis_url`."""
    keys = {role: (await create_key(redis_url, settings, "demo", role, "demo"))[0]
            for role in ("bot", "ivr", "agent")}
    return await scenario(url, keys)


def run(settings: Settings, url: str | None = None) -> int:
    """Play the scenario and print the brief. The store is started (and stopped) here, before
    and after the event loop: a temporary one for a local demo, or the server's own."""
    if url:
        with command_store(settings) as redis_url:
            accepted = asyncio.run(_run_remote(settings, url, redis_url))
    else:
        with tempfile.TemporaryDirectory(prefix="handoff-demo-", dir="/tmp") as tmp, \
                EmbeddedRedis(Path(tmp)) as redis:
            accepted = asyncio.run(_run_local(settings, redis.url))
    print(format_brief(accepted))
    return 0
