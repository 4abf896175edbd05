"""AI agents over MCP, with the SDK's own client as the oracle, against a real `handoff serve`
and a real `handoff mcp` (Streamable HTTP, and stdio) on a real Redis.

Whatever an MCP call does is a REST call with the caller's own key: these tests check that the
MCP side offers and does exactly what that key could do over REST, no more.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx2
import mcp_types as types
import pytest
import redis
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated, listen
from mcp.shared.exceptions import MCPError

from handoff.client import HandoffClient
from handoff.kernel.settings import Settings
from handoff.mcp.render import MAX_CHARS, brief_text
from handoff.services import apikeys
from handoff.store import Store
from handoff.store.connection import connect
from schemas.brief import Brief
from tests.card_checks import leaked, store_text
from tests.conftest import CLUSTER, RedisServer, free_port
from tests.faults.service import Service
from tests.redis_peek import assert_unchanged, snapshot

CHAT = {"identities": [{"kind": "chat", "value": "visitor-42"}]}
PHONE = {"identities": [{"kind": "phone", "value": "+15550104477"}]}
CARD = "4111 1111 1111 1111"


def _env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env["HANDOFF_REDIS_URL"] = redis_url
    if CLUSTER:
        env["HANDOFF_REDIS_CLUSTER"] = "true"
    return env


@dataclass
class McpHttp:
    """`handoff mcp --http` in front of one `handoff serve`."""

    service_url: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.log = log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handoff", "mcp", "--http", "--port", str(self.port),
             "--url", self.service_url], stdout=log, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx2.get(self.url, timeout=1).status_code == 401:
                    return
            except httpx2.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"handoff mcp did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.log is not None:
            self.log.close()


@dataclass
class Stack:
    service: Service
    mcp: McpHttp
    settings: Settings
    keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def key(self, role: str, tenant: str = "acme") -> str:
        return self.keys[(tenant, role)]

    def rest(self, role: str, tenant: str = "acme") -> HandoffClient:
        return HandoffClient(self.service.url, self.key(role, tenant))


async def _mint(settings: Settings) -> dict[tuple[str, str], str]:
    assert settings.redis_url is not None
    client = connect(settings.redis_url, cluster=settings.redis_cluster, timeout=5,
                     max_connections=4)
    blocking = connect(settings.redis_url, cluster=settings.redis_cluster, timeout=5,
                       max_connections=1, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=100)
    try:
        keys = {}
        for tenant in ("acme", "globex"):
            for role in apikeys.ROLES:
                keys[(tenant, role)] = (await apikeys.create(
                    store, tenant=tenant, role=role, name="mcp-test",
                    now_ms=int(time.time() * 1000)))[0]
        return keys
    finally:
        await store.close()


@pytest.fixture
async def stack(redis_sync: redis.Redis, redis_server: RedisServer, settings: Settings,
                tmp_path: Path) -> AsyncIterator[Stack]:
    service = Service(redis_server.url, free_port(), tmp_path / "serve.log",
                      extra_env={"HANDOFF_REDIS_CLUSTER": "true"} if CLUSTER else {})
    mcp = McpHttp(service.url, free_port(), tmp_path / "mcp.log")
    try:
        await asyncio.gather(asyncio.to_thread(service.start), asyncio.to_thread(mcp.start))
        yield Stack(service, mcp, settings, await _mint(settings))
    finally:
        mcp.stop()
        service.stop()


@dataclass
class Notes:
    """What a client heard besides answers: the URIs of resources/updated notifications."""

    updated: list[str] = field(default_factory=list)
    heard: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.append(str(message.params.uri))
            self.heard.set()


@asynccontextmanager
async def over_http(stack: Stack, key: str, notes: Notes | None = None
                    ) -> AsyncIterator[ClientSession]:
    """An initialized MCP session over Streamable HTTP, authenticated with `key`."""
    async with AsyncExitStack() as exits:
        http = await exits.enter_async_context(httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx2.Timeout(30, read=300)))
        read, write = await exits.enter_async_context(
            streamable_http_client(stack.mcp.url, http_client=http))
        session = await exits.enter_async_context(ClientSession(
            read, write, message_handler=notes.handler if notes else None))
        await session.initialize()
        yield session


@asynccontextmanager
async def over_stdio(stack: Stack, key: str) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with `handoff mcp` started as a subprocess on stdio."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "handoff", "mcp", "--url", stack.service.url],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")},
             "HANDOFF_KEY": key})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def at(minutes: float) -> str:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30 - minutes)
    return moment.isoformat().replace("+00:00", "Z")


async def chat_then_ivr(stack: Stack) -> str:
    """Ana gives her order number to the web chat bot, then calls: the IVR joins the call to
    the chat with the code the bot gave her and verifies her account by PIN. Her customer id."""
    async with stack.rest("bot") as bot, stack.rest("ivr") as ivr:
        chat = await bot.append_turns("web-7f3a", {
            "customer": CHAT, "channel": "chat", "source": "acme-bot",
            "turns": [{"id": "t1", "role": "customer", "ts": at(0),
                       "text": "I was charged twice for order A-1001"}],
            "facts": {"order_number": "A-1001", "issue": "double charge"}})
        first = await bot.request_handoff({
            "customer": CHAT, "conversation_id": "web-7f3a", "reason": "customer_request",
            "queue": "billing", "summary": "Charged twice", "continuation": True})
        assert first.continuation_code is not None
        await bot.cancel(first.id, note="she will call instead")
        await ivr.redeem(first.continuation_code, {
            "customer": PHONE, "conversation_id": "CA9f2", "channel": "voice"})
        await ivr.verify({"customer": PHONE, "identity": {"kind": "account", "value": "88812345"},
                          "method": "pin", "level": "high", "channel": "voice",
                          "conversation_id": "CA9f2", "expires_in": 1800})
        return chat.customer_id


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


VIRTUAL_AGENT = ["append_turns", "check_reask", "get_customer_context", "get_handoff",
                 "request_handoff"]
COPILOT = ["accept_handoff", "append_turns", "check_reask", "get_customer_context",
           "get_handoff", "list_queue"]
SUPERVISOR = ["get_customer_context", "list_queue"]


async def test_each_role_is_offered_the_tools_its_key_may_use_over_rest(stack: Stack) -> None:
    await chat_then_ivr(stack)
    offered = {}
    for role in ("bot", "ivr", "agent", "supervisor", "admin"):
        async with over_http(stack, stack.key(role)) as session:
            listed = (await session.list_tools()).tools
            offered[role] = sorted(t.name for t in listed)
            for tool in listed:
                assert tool.input_schema["type"] == "object"
                assert tool.output_schema is not None and tool.output_schema["type"] == "object"
            if role == "supervisor":  # what it is offered, REST lets it do
                read = await session.call_tool("get_customer_context", {"ref": "chat:visitor-42"})
                assert not read.is_error, text_of(read)
                queue = await session.call_tool("list_queue", {})
                assert not queue.is_error, text_of(queue)
    assert offered == {"bot": VIRTUAL_AGENT, "ivr": VIRTUAL_AGENT, "agent": COPILOT,
                       "supervisor": SUPERVISOR, "admin": []}
    async with over_stdio(stack, stack.key("bot")) as session:
        assert sorted(t.name for t in (await session.list_tools()).tools) == VIRTUAL_AGENT


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # 2025-era subscribe
async def test_an_ai_agent_continues_after_an_agent_hands_the_customer_back(
        stack: Stack) -> None:
    customer = await chat_then_ivr(stack)
    uri = context_uri("chat:visitor-42")
    notes = Notes()
    async with over_http(stack, stack.key("bot"), notes) as ai:
        # It reads what the chat and the IVR learned before it says anything.
        context = await ai.call_tool("get_customer_context", {"ref": "chat:visitor-42"})
        assert not context.is_error, text_of(context)
        assert context.structured_content["customer"]["id"] == customer
        text = text_of(context)
        assert "VERIFIED: account 88812345 by pin (high) on voice" in text
        assert "Fact order_number = A-1001 (said on chat" in text
        assert "Do not ask for: account, issue, order_number" in text
        assert len(text) <= MAX_CHARS
        # It is warned before asking for what the customer gave on the chat.
        warned = await ai.call_tool("check_reask", {"ref": "chat:visitor-42",
                                                    "text": "what's your order number?"})
        assert warned.structured_content == {"ok": False, "reasks": [{
            "topic": "order_number", "phrase": "order number",
            "known": [{"key": "order_number", "value": "A-1001"}]}]}
        assert "A-1001" in text_of(warned)
        fine = await ai.call_tool("check_reask", {"ref": "chat:visitor-42",
                                                  "text": "I can see order A-1001."})
        assert fine.structured_content == {"ok": True, "reasks": []}
        # It records the conversation and asks for a person; a retry makes no second one.
        said = await ai.call_tool("append_turns", {
            "conversation_id": "web-8b1c", "customer": CHAT, "channel": "chat",
            "source": "acme-ai", "turns": [
                {"id": "a1", "role": "customer", "text": "the refund never came", "ts": at(29)},
                {"id": "a2", "role": "bot", "text": "I'll get a colleague.", "ts": at(29.1)}]})
        assert said.structured_content["appended"] == 2, text_of(said)
        ask = {"customer": CHAT, "conversation_id": "web-8b1c", "queue": "billing",
               "reason": "customer_request", "priority": 2,
               "summary": "Refund for the double charge on A-1001 not received",
               "idempotency_key": "web-8b1c-refund"}
        first = await ai.call_tool("request_handoff", ask)
        again = await ai.call_tool("request_handoff", ask)
        assert not first.is_error, text_of(first)
        handoff = first.structured_content
        assert again.structured_content["id"] == handoff["id"]
        assert handoff["status"] == "pending" and handoff["continuation_code"]
        # A person takes it over REST and, while the AI agent follows the customer's context
        # (subscribed after the accept, so only the hand-back can fire it), gives the customer
        # back with a note.
        async with stack.rest("agent") as agent:
            await agent.accept(handoff["id"], "agent-7")
            await ai.subscribe_resource(uri)
            assert not notes.updated
            await agent.hand_back(handoff["id"], "Refund re-issued, arrives in 3 days")
        await asyncio.wait_for(notes.heard.wait(), 20)
        assert uri in notes.updated
        status = await ai.call_tool("get_handoff", {"handoff_id": handoff["id"]})
        assert status.structured_content["status"] == "handed_back"
        after = await ai.call_tool("get_customer_context", {"ref": "chat:visitor-42"})
        contact = after.structured_content["last_human_contact"]
        assert (contact["agent_id"], contact["note"], contact["outcome"]) == (
            "agent-7", "Refund re-issued, arrives in 3 days", "resolved")
        assert ("LAST HUMAN CONTACT: agent agent-7 handed back to bot, outcome resolved"
                in text_of(after))
        assert "Their note: Refund re-issued, arrives in 3 days" in text_of(after)


async def test_a_bot_key_cannot_accept_a_handoff(stack: Stack) -> None:
    await chat_then_ivr(stack)
    async with stack.rest("bot") as bot:
        made = await bot.request_handoff({
            "customer": CHAT, "conversation_id": "web-7f3a", "reason": "customer_request",
            "queue": "billing"})
    async with over_http(stack, stack.key("bot")) as ai:
        refused = await ai.call_tool("accept_handoff", {"handoff_id": made.id,
                                                        "agent_id": "agent-7"})
        assert refused.is_error
        assert text_of(refused) == ("Forbidden: a bot key may not use this route; "
                                    "it needs an agent key")
        queue = await ai.call_tool("list_queue", {})
        assert queue.is_error and text_of(queue).startswith("Forbidden")
    async with stack.rest("agent") as agent:
        assert (await agent.get_handoff(made.id)).status == "pending"


def context_uri(ref: str) -> str:
    return f"handoff://customers/{ref}/context"


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # 2025-era subscribe
async def test_a_subscribed_client_hears_when_the_context_changes(stack: Stack) -> None:
    await chat_then_ivr(stack)
    notes = Notes()
    async with over_http(stack, stack.key("agent"), notes) as session:
        await session.subscribe_resource(context_uri("chat:visitor-42"))
        async with stack.rest("bot") as bot:
            await bot.append_turns("web-7f3a", {"turns": [
                {"id": "t9", "role": "customer", "text": "hello?", "ts": at(29)}]})
        await asyncio.wait_for(notes.heard.wait(), 20)
        assert notes.updated[0] == context_uri("chat:visitor-42")
        read = await session.read_resource(context_uri("chat:visitor-42"))
        brief = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert brief["turns"][-1]["text"] == "hello?"


async def test_another_tenants_customer_is_not_found(stack: Stack) -> None:
    customer = await chat_then_ivr(stack)
    async with over_http(stack, stack.key("agent", "globex")) as session:
        for ref in (customer, "chat:visitor-42", "account:88812345"):
            result = await session.call_tool("get_customer_context", {"ref": ref})
            assert result.is_error and text_of(result) == "Not Found: no such customer"
            result = await session.call_tool("check_reask", {
                "ref": ref, "text": "what's your order number?"})
            assert result.is_error and text_of(result).startswith("Not Found")
            with pytest.raises(MCPError, match="Not Found"):
                await session.read_resource(context_uri(ref))


async def test_a_key_that_may_not_read_a_context_is_told_so_not_sent_an_internal_error(
        stack: Stack) -> None:
    await chat_then_ivr(stack)
    async with over_http(stack, stack.key("admin")) as session:
        with pytest.raises(MCPError, match="Forbidden") as refused:
            await session.read_resource(context_uri("chat:visitor-42"))
    assert refused.value.error.code == types.INVALID_REQUEST


async def test_a_card_number_sent_through_append_turns_is_masked_before_it_is_stored(
        stack: Stack, redis_sync: redis.Redis) -> None:
    async with over_http(stack, stack.key("bot")) as session:
        result = await session.call_tool("append_turns", {
            "conversation_id": "web-7f3a", "customer": CHAT, "channel": "chat",
            "turns": [{"id": "t1", "role": "customer", "ts": at(0),
                       "text": f"my card is {CARD}, cvv 123"}],
            "facts": {"card_used": CARD}})
        assert not result.is_error, text_of(result)
    async with stack.rest("agent") as agent:
        brief = (await agent.context("chat:visitor-42")).brief
    assert brief.turns[0].text == "my card is **** **** **** 1111, cvv ***"
    assert brief.facts["card_used"].value == "**** **** **** 1111"
    text, _ = store_text(redis_sync)
    assert not leaked([CARD.replace(" ", "")], text)


MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("append_turns", {}),
    ("append_turns", {"conversation_id": "web-1"}),
    ("append_turns", {"conversation_id": "web-1", "turns": []}),
    ("append_turns", {"conversation_id": "web-1", "turns": [{"id": "t1"}]}),
    ("append_turns", {"conversation_id": "web-1", "channel": "fax", "customer": CHAT,
                      "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": at(1)}]}),
    ("append_turns", {"conversation_id": "web-1", "customer": CHAT, "channel": "chat",
                      "turns": [{"id": "t1", "role": "customer", "text": "hi",
                                 "ts": "yesterday"}]}),
    ("append_turns", {"conversation_id": "..", "customer": CHAT, "channel": "chat",
                      "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": at(1)}]}),
    ("append_turns", {"conversation_id": "web-1", "customer": {"identities": []},
                      "channel": "chat",
                      "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": at(1)}]}),
    ("append_turns", {"conversation_id": "web-1", "customer": CHAT, "channel": "chat",
                      "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": at(1)}],
                      "surprise": True}),
    ("append_turns", {"conversation_id": "web-1", "turns": [
        {"id": "t1", "role": "customer", "text": "x" * 16001, "ts": at(1)}]}),
    ("append_turns", {"conversation_id": "web-1", "customer": CHAT, "channel": "chat",
                      "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": at(1)}],
                      "facts": {"1bad key": "v"}}),
    ("request_handoff", {}),
    ("request_handoff", {"customer": CHAT, "conversation_id": "web-1", "queue": "Billing!",
                         "reason": "customer_request", "summary": "s"}),
    ("request_handoff", {"customer": CHAT, "conversation_id": "web-1", "queue": "billing",
                         "reason": "boredom", "summary": "s"}),
    ("request_handoff", {"customer": CHAT, "conversation_id": "web-1", "queue": "billing",
                         "reason": "customer_request", "summary": "s", "priority": 9}),
    ("get_customer_context", {"ref": ""}),
    ("get_customer_context", {"ref": "chat:visitor-42", "turns": 5000}),
    ("get_customer_context", {"ref": "nonsense"}),
    ("check_reask", {"ref": "chat:visitor-42"}),
    ("no_such_tool", {"ref": "chat:visitor-42"}),
]


async def test_twenty_malformed_calls_get_tool_errors_no_5xx_and_store_nothing(
        stack: Stack, redis_sync: redis.Redis) -> None:
    assert len(MALFORMED) == 20
    await chat_then_ivr(stack)
    before = snapshot(redis_sync)
    statuses: list[int] = []

    async def seen(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    for role in ("bot", "agent"):
        async with AsyncExitStack() as exits:
            http = await exits.enter_async_context(httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {stack.key(role)}"},
                event_hooks={"response": [seen]}, timeout=30))
            read, write = await exits.enter_async_context(
                streamable_http_client(stack.mcp.url, http_client=http))
            session = await exits.enter_async_context(ClientSession(read, write))
            await session.initialize()
            for name, arguments in MALFORMED:
                result = await session.call_tool(name, arguments)
                assert result.is_error, (role, name, arguments)
                message = text_of(result)
                assert message.split(":")[0] in (
                    "Unprocessable Content", "Unprocessable Entity", "Not Found", "Forbidden"
                ), message
                assert "Traceback" not in message and "File \"" not in message
    assert statuses and max(statuses) < 500
    metrics = httpx2.get(f"{stack.service.url}/metrics").text
    assert not [line for line in metrics.splitlines()
                if line.startswith("handoff_http_requests_total") and 'status="5' in line]
    assert_unchanged(before, snapshot(redis_sync))


async def revoke(stack: Stack, role: str) -> None:
    """The tenant's admin revokes the `role` key, as an operator would over REST."""
    async with stack.rest(role) as holder, stack.rest("admin") as admin:
        await admin.revoke_key((await holder.whoami()).id)


async def ended(session: ClientSession, seconds: float = 15.0) -> BaseException:
    """What the session's next requests raise once it has ended (fails if it never does)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(session.list_tools(), 5)
        except (MCPError, TimeoutError) as exc:
            return exc
        await asyncio.sleep(0.2)
    raise AssertionError("the session is still open")


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # 2025-era subscribe
async def test_a_revoked_keys_http_session_ends(stack: Stack) -> None:
    await chat_then_ivr(stack)
    async with over_http(stack, stack.key("agent")) as session:
        await session.subscribe_resource(context_uri("chat:visitor-42"))
        await revoke(stack, "agent")
        await until_logged(stack.mcp.log_path, "MCP session ended: 200")
        assert isinstance(await ended(session), MCPError)


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # 2025-era subscribe
async def test_a_revoked_keys_stdio_session_ends(stack: Stack) -> None:
    await chat_then_ivr(stack)
    async with over_stdio(stack, stack.key("agent")) as session:
        offered = sorted(t.name for t in (await session.list_tools()).tools)
        assert "accept_handoff" in offered
        await session.subscribe_resource(context_uri("chat:visitor-42"))
        await revoke(stack, "agent")
        await ended(session)
    # Nor does the revoked key start a new one (given as --key this time): exit status 2.
    again = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "handoff", "mcp", "--url", stack.service.url,
                         "--key", stack.key("agent")],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")})
    assert again.returncode == 2, again.stderr
    assert b"refused to start: Unauthorized" in again.stderr and not again.stdout


async def until_logged(path: Path, text: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while text not in (log := await asyncio.to_thread(path.read_text, errors="replace")):
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.1)


@asynccontextmanager
async def modern_http(stack: Stack, key: str) -> AsyncIterator[ClientSession]:
    """A 2026-era session over Streamable HTTP: discovered, every request self-contained."""
    async with AsyncExitStack() as exits:
        http = await exits.enter_async_context(httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=300)))
        read, write = await exits.enter_async_context(
            streamable_http_client(stack.mcp.url, http_client=http))
        session = await exits.enter_async_context(ClientSession(read, write))
        await session.discover()
        yield session


async def test_a_2026_era_client_listens_for_context_changes_and_hears_the_hand_back(
        stack: Stack) -> None:
    await chat_then_ivr(stack)
    uri = context_uri("chat:visitor-42")
    async with stack.rest("bot") as bot:
        made = await bot.request_handoff({
            "customer": CHAT, "conversation_id": "web-7f3a", "reason": "customer_request",
            "queue": "billing"})
    async with modern_http(stack, stack.key("bot")) as ai, stack.rest("agent") as agent:
        assert sorted(t.name for t in (await ai.list_tools()).tools) == VIRTUAL_AGENT
        # Accepted before the listen begins, so the first change it hears is the hand-back.
        await agent.accept(made.id, "agent-7")
        async with listen(ai, resource_subscriptions=[uri]) as subscription:
            await agent.hand_back(made.id, "Sorted: refund re-issued")
            event = await asyncio.wait_for(anext(subscription), 20)
        assert event == ResourceUpdated(uri=uri)
        after = await ai.call_tool("get_customer_context", {"ref": "chat:visitor-42"})
        assert after.structured_content["last_human_contact"]["note"] == (
            "Sorted: refund re-issued")
        with pytest.raises(MCPError, match="Not Found"):
            async with listen(ai, resource_subscriptions=[context_uri("chat:nobody")]):
                pass


def test_the_text_rendering_stays_within_its_bound_however_long_the_brief() -> None:
    now = datetime.now(UTC)
    brief = Brief.model_validate({
        "customer": {"id": "cus_x", "identities": [
            {"kind": f"x-k{n}", "value": "v" * 256} for n in range(20)]},
        "verifications": [], "do_not_ask": [f"k{n}" for n in range(100)], "handoffs": [],
        "journey": [], "flags": [], "generated_at": now.isoformat(),
        "facts": {f"f{n}": {"value": "w" * 2000, "at": now.isoformat()} for n in range(100)},
        "turns": [{"id": f"t{n}", "conversation_id": "c", "channel": "chat",
                   "role": "customer", "text": f"turn {n} " + "z" * 16000,
                   "ts": (now - timedelta(minutes=50 - n)).isoformat()} for n in range(50)]})
    text = brief_text(brief)
    assert len(text) <= MAX_CHARS
    assert "\nDo not ask for: k0, k1," in text and "Fact f0 = www" in text
    assert "turn 49 " in text and "turn 0 " not in text
