"""Many writers, one customer: the chatbot, the IVR and agents all write at once, every post is
retried concurrently, and still every turn is stored exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.kernel import ids
from handoff.services import identity, survivors, writes
from handoff.store import keys as redis_keys
from handoff.store.records import CustomerWrite
from schemas.common import CustomerRef, Identity
from tests.conftest import Keys
from tests.scenario import brief_of

Client = TestClient[Any, Any]
VISITOR = {"kind": "chat", "value": "visitor-42"}
PHONE = {"kind": "phone", "value": "+1 (555) 010-4477"}
ACCOUNT = {"kind": "account", "value": "88812345"}
TURNS_PER_WRITER = 5


def turn(turn_id: str, text: str, second: int = 0, role: str = "customer") -> dict[str, Any]:
    return {"id": turn_id, "role": role, "text": text,
            "ts": f"2026-11-23T10:{second // 60 % 60:02d}:{second % 60:02d}Z"}


def first_post_body(visitor: str, text: str) -> dict[str, Any]:
    """A visitor's first message, from the chat session they are."""
    return {"customer": {"identities": [{"kind": "chat", "value": visitor}]},
            "channel": "chat", "turns": [turn("t1", text)]}


async def post_turns(client: Client, headers: dict[str, str], conversation_id: str,
                     body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/v1/conversations/{conversation_id}/turns", headers=headers,
                          json=body)
    assert r.status == 200, await r.text()
    result: dict[str, Any] = await r.json()
    return result


async def all_turns(client: Client, headers: dict[str, str], cus_id: str,
                    limit: int = 30) -> list[dict[str, Any]]:
    """The whole transcript, newest first, following `next` until the last page."""
    out: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        query = f"?limit={limit}" + (f"&before={before}" if before else "")
        r = await client.get(f"/v1/customers/{cus_id}/turns{query}", headers=headers)
        assert r.status == 200, await r.text()
        page = await r.json()
        out += page["items"]
        before = page["next"]
        if before is None:
            return out


async def establish_customer(client: Client, keys: Keys) -> str:
    """Web chat first; an agent verifies the account on the chat; then the customer calls in
    and proves the same account to the IVR, so the call joins the chat's customer."""
    chat = await post_turns(client, keys("bot"), "web-main", {
        "customer": {"identities": [VISITOR]}, "channel": "chat", "source": "acme-bot",
        "turns": [turn("t0", "I was charged twice")]})
    cus_id: str = chat["customer_id"]
    r = await client.post("/v1/verifications", headers=keys("agent"), json={
        "customer": {"identities": [VISITOR]}, "identity": ACCOUNT, "method": "kba",
        "channel": "chat", "conversation_id": "web-main"})
    assert r.status == 200, await r.text()
    r = await client.post("/v1/verifications", headers=keys("ivr"), json={
        "customer": {"identities": [PHONE]}, "identity": ACCOUNT, "method": "pin",
        "level": "high", "channel": "voice", "conversation_id": "CA-0", "source": "acme-ivr"})
    assert r.status == 200, await r.text()
    assert (await r.json())["customer_id"] == cus_id
    return cus_id


@dataclass(frozen=True)
class Writer:
    """One of the concurrent writers: its key, its conversation and how it names the customer."""

    role: str
    conversation_id: str
    channel: str
    identity: dict[str, str]
    turn_role: str

    def body(self, n: int) -> dict[str, Any]:
        return {"customer": {"identities": [self.identity]}, "channel": self.channel,
                "source": f"acme-{self.role}",
                "turns": [turn(f"{self.conversation_id}-t{n}",
                               f"{self.role} says {n} on {self.conversation_id}",
                               second=n, role=self.turn_role)]}


WRITERS = ([Writer("bot", f"web-{n}", "chat", VISITOR, "bot") for n in range(1, 9)]
           + [Writer("ivr", f"CA-{n}", "voice", PHONE, "customer") for n in range(1, 7)]
           + [Writer("agent", f"callback-{n}", "voice", PHONE, "agent") for n in range(1, 7)])


async def write_everything_twice(client: Client, keys: Keys) -> list[dict[str, Any]]:
    """Every writer posts each of its turns, and every post is sent twice at the same time."""
    posts = [post_turns(client, keys(w.role), w.conversation_id, w.body(n))
             for w in WRITERS for n in range(TURNS_PER_WRITER) for _ in range(2)]
    return list(await asyncio.gather(*posts))


async def test_twenty_concurrent_writers_each_retrying_every_post_land_on_one_customer(
        client: Client, keys: Keys) -> None:
    cus_id = await establish_customer(client, keys)
    results = await write_everything_twice(client, keys)
    assert len(WRITERS) == 20
    assert {r["customer_id"] for r in results} == {cus_id}


async def test_each_concurrently_retried_turn_is_counted_once_appended_and_once_duplicate(
        client: Client, keys: Keys) -> None:
    await establish_customer(client, keys)
    results = await write_everything_twice(client, keys)
    expected = len(WRITERS) * TURNS_PER_WRITER
    assert sum(r["appended"] for r in results) == expected
    assert sum(r["duplicates"] for r in results) == expected
    pairs = Counter((r["conversation_id"], r["appended"], r["duplicates"]) for r in results)
    # Each retried pair answered one "appended 1" and one "duplicate 1", never two of either.
    assert all(appended + duplicates == 1 for _, appended, duplicates in pairs)


async def test_the_transcript_holds_every_turn_exactly_once_across_all_pages(
        client: Client, keys: Keys) -> None:
    cus_id = await establish_customer(client, keys)
    await write_everything_twice(client, keys)
    transcript = await all_turns(client, keys("agent"), cus_id)
    stored = Counter((t["conversation_id"], t["id"]) for t in transcript)
    expected = {(w.conversation_id, f"{w.conversation_id}-t{n}")
                for w in WRITERS for n in range(TURNS_PER_WRITER)} | {("web-main", "t0")}
    assert set(stored) == expected
    assert max(stored.values()) == 1
    cursors = [t["cursor"] for t in transcript]
    assert len(set(cursors)) == len(cursors)


async def test_the_turns_stream_in_redis_has_one_entry_per_turn(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    cus_id = await establish_customer(client, keys)
    await write_everything_twice(client, keys)
    assert redis_sync.xlen(redis_keys.customer("acme", cus_id).turns) == (
        len(WRITERS) * TURNS_PER_WRITER + 1)


async def test_every_stored_turn_carries_the_text_its_own_writer_sent(
        client: Client, keys: Keys) -> None:
    cus_id = await establish_customer(client, keys)
    await write_everything_twice(client, keys)
    transcript = await all_turns(client, keys("agent"), cus_id, limit=500)
    for t in transcript:
        if t["id"] != "t0":
            n = t["id"].rsplit("-t", 1)[1]
            assert t["text"].endswith(f"says {n} on {t['conversation_id']}")


async def test_concurrent_first_posts_with_one_new_chat_identity_create_one_customer(
        client: Client, keys: Keys) -> None:
    async def first_post(visitor: str, conversation_id: str) -> str:
        result = await post_turns(client, keys("bot"), conversation_id,
                                  first_post_body(visitor, f"hello from {conversation_id}"))
        return str(result["customer_id"])

    # Ten new visitors, each opening two chat tabs at the same instant.
    races = [asyncio.gather(first_post(f"visitor-{n}", f"tab-a-{n}"),
                            first_post(f"visitor-{n}", f"tab-b-{n}")) for n in range(10)]
    for a, b in await asyncio.gather(*races):
        assert a == b


async def test_both_tabs_of_a_concurrent_first_post_are_in_the_one_customers_brief(
        client: Client, keys: Keys) -> None:
    headers = keys("bot")
    bodies = [first_post_body("visitor-7", f"hello from tab {tab}") for tab in ("a", "b")]
    results = await asyncio.gather(post_turns(client, headers, "tab-a", bodies[0]),
                                   post_turns(client, headers, "tab-b", bodies[1]))
    r = await client.get("/v1/customers/chat:visitor-7/context", headers=keys("agent"))
    assert r.status == 200, await r.text()
    brief = await r.json()
    assert brief["customer"]["id"] == results[0]["customer_id"] == results[1]["customer_id"]
    assert sorted(j["conversation_id"] for j in brief["journey"]) == ["tab-a", "tab-b"]
    assert sorted(t["text"] for t in brief["turns"]) == ["hello from tab a", "hello from tab b"]


# -- first contact: index entries that run ahead of the customer they name ----------------------

def chat_identity(client: Client, visitor: str) -> list[str]:
    """The index key of a chat identity, as a first post links it."""
    found = identity.identities(CustomerRef(identities=[Identity(kind="chat", value=visitor)]),
                                client.app[DEPS].privacy, "acme")
    return [i.key for i in found]


async def test_a_visitor_whose_first_post_died_between_link_and_write_can_still_chat(
        client: Client, keys: Keys) -> None:
    # A first post links the visitor to a new customer id, and its process dies before the write
    # that would have created that customer. The next post, from another tab, must go through.
    deps = client.app[DEPS]
    orphan = ids.customer_id()
    await deps.store.customers.link("acme", orphan, conversations=[],
                                    identities=chat_identity(client, "visitor-9"),
                                    ttl_ms=deps.retention_ms("acme"))

    result = await post_turns(client, keys("bot"), "tab-c",
                              first_post_body("visitor-9", "is anyone there?"))

    assert result["customer_id"] == orphan
    brief = await brief_of(client, keys, "chat:visitor-9")
    assert [t["text"] for t in brief["turns"]] == ["is anyone there?"]


def before_the_first_identity_link(client: Client, monkeypatch: pytest.MonkeyPatch,
                                   meanwhile: Callable[[str], Awaitable[None]]) -> None:
    """Run `meanwhile` (given the customer about to be linked) just before the next request
    links an identity: the moment a racing request would slip in."""
    store = client.app[DEPS].store
    real_link = store.customers.link
    fired = False

    async def link(tenant: str, cus_id: str, **kw: Any) -> dict[str, str]:
        nonlocal fired
        if kw["identities"] and not fired:
            fired = True
            await meanwhile(cus_id)
        return await real_link(tenant, cus_id, **kw)

    monkeypatch.setattr(store.customers, "link", link)


async def test_a_write_that_reached_the_loser_of_a_first_contact_race_joins_the_winner(
        client: Client, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tab A links its conversation to a new customer; before it links the visitor, tab B's first
    # post wins the visitor, and a second message on tab A reaches A's customer. A then gives its
    # customer up: the message it received must be in the winner's brief, not stranded.
    raced: list[dict[str, Any]] = []

    async def meanwhile(_: str) -> None:
        raced.append(await post_turns(client, keys("bot"), "tab-b",
                                      first_post_body("visitor-8", "from tab b")))
        raced.append(await post_turns(client, keys("bot"), "tab-a", {
            "channel": "chat", "turns": [turn("t2", "still me, on tab a")]}))

    before_the_first_identity_link(client, monkeypatch, meanwhile)
    first = await post_turns(client, keys("bot"), "tab-a",
                             first_post_body("visitor-8", "from tab a"))
    monkeypatch.undo()

    winner, stranded = raced[0]["customer_id"], raced[1]["customer_id"]
    assert first["customer_id"] == winner != stranded
    brief = await brief_of(client, keys, "chat:visitor-8")
    assert brief["customer"]["id"] == winner
    assert sorted(t["text"] for t in brief["turns"]) == [
        "from tab a", "from tab b", "still me, on tab a"]
    assert [(m["customer_id"], m["via"]) for m in brief["merges"]] == [
        (stranded, "first-contact")]
    later = await post_turns(client, keys("bot"), "tab-a", {
        "channel": "chat", "turns": [turn("t3", "hello again")]})
    assert later["customer_id"] == winner


async def test_a_customer_given_up_before_anything_reached_it_leaves_a_pointer_for_a_day(
        client: Client, keys: Keys, monkeypatch: pytest.MonkeyPatch, redis_sync: Any) -> None:
    losers: list[str] = []

    async def meanwhile(cus_id: str) -> None:
        losers.append(cus_id)
        await post_turns(client, keys("bot"), "tab-e", first_post_body("visitor-6", "from tab e"))

    before_the_first_identity_link(client, monkeypatch, meanwhile)
    first = await post_turns(client, keys("bot"), "tab-d",
                             first_post_body("visitor-6", "from tab d"))
    monkeypatch.undo()

    stub = redis_keys.customer("acme", losers[0]).meta
    assert redis_sync.hgetall(stub) == {b"merged_into": first["customer_id"].encode()}
    assert 0 < redis_sync.pttl(stub) <= survivors.IN_FLIGHT_MS
    brief = await brief_of(client, keys, "chat:visitor-6")
    assert brief["merges"] == []
    assert sorted(t["text"] for t in brief["turns"]) == ["from tab d", "from tab e"]
    # A request that resolved the abandoned customer before the pointer follows it.
    late = CustomerWrite()
    late.set_fact({"key": "late", "value": "x", "verified": False, "channel": None,
                   "conversation_id": None, "turn_id": None, "source": None, "at": 0, "by": "t"},
                  announce="fact.set")
    moved_to, _ = await writes.write(client.app[DEPS], "acme", losers[0], late)
    assert moved_to == first["customer_id"]
