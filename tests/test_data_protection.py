"""Data protection, scenario by scenario: card numbers never land, sensitive identities are kept
only as a keyed hash, tenants mask their own patterns, erasure leaves no trace, every read is
audited, keys can be revoked and rotated everywhere at once, guessing is slowed down, and every
key of a customer expires with the tenant's retention.

Everything goes through the public HTTP API (or the `handoff` command line); Redis is only read,
the way an auditor would: every key, by its type, msgpack unpacked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import string
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack
import pytest
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.kernel import logs
from handoff.kernel.settings import Settings
from handoff.store import keys as redis_keys
from tests.conftest import AppFactory, Keys

Client = TestClient[Any, Any]
Json = dict[str, Any]
DAY_MS = 86_400_000
ROOT = Path(__file__).resolve().parents[1]
# Loopback too: to the server, a second caller on another machine.
OTHER_ADDRESS = "127.0.0.2"


# -- HTTP ------------------------------------------------------------------------------------


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ref(kind: str, value: str) -> str:
    """A `{ref}` path segment for an identity, URL-encoded."""
    return quote(f"{kind}:{value}", safe=":")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def call(client: Client, method: str, path: str, headers: dict[str, str],
               body: Json | None = None, expect: int = 200) -> Json:
    r = await client.request(method, path, headers=headers, json=body)
    assert r.status == expect, f"{method} {path}: {r.status} {await r.text()}"
    answer: Json = await r.json()
    return answer


async def status_of(client: Client, method: str, path: str, headers: dict[str, str],
                    body: Json | None = None) -> int:
    r = await client.request(method, path, headers=headers, json=body)
    await r.read()
    return r.status


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@asynccontextmanager
async def from_address(client: Client, address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose requests reach the server from another source address."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(base_url=str(client.make_url("/")),
                                     connector=connector) as session:
        yield session


async def within_one_minute(seconds_needed: float) -> None:
    """Counters are per wall-clock minute: start late in one and the count starts over."""
    if time.time() % 60 > 60 - seconds_needed:
        await asyncio.sleep(60 - time.time() % 60 + 0.05)


# -- looking inside Redis --------------------------------------------------------------------


def scan(r: Any) -> list[bytes]:
    """Every key: on one server, or on every node of a cluster (scan_iter visits them all)."""
    return sorted(set(r.scan_iter(count=1000)))


def type_of(r: Any, key: bytes) -> str:
    kind = r.type(key)
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def blobs_of(r: Any, key: bytes, kind: str) -> list[bytes]:
    """A key's whole contents, read by its type, as flat bytes (field names included)."""
    if kind == "string":
        return [r.get(key) or b""]
    if kind == "hash":
        return [b for pair in r.hgetall(key).items() for b in pair]
    if kind == "list":
        return list(r.lrange(key, 0, -1))
    if kind == "set":
        return list(r.smembers(key))
    if kind == "zset":
        return [b for member, score in r.zrange(key, 0, -1, withscores=True)
                for b in (member, repr(score).encode())]
    if kind == "stream":
        return [b for entry_id, fields in r.xrange(key, "-", "+")
                for b in (entry_id, *[x for pair in fields.items() for x in pair])]
    return []  # expired between SCAN and TYPE


def readable(blob: bytes) -> str:
    """The bytes as text and, when they are msgpack, the unpacked record as JSON too: a card
    number stored as a msgpack integer is as much a leak as one stored as text."""
    text = blob.decode("latin-1")
    try:
        value = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except Exception:  # plain text, ids, numbers: the raw bytes speak for themselves
        return text
    return f"{text}\n{json.dumps(value, default=repr, ensure_ascii=False)}"


@dataclass
class Dump:
    """Every key of the store with its readable contents."""

    contents: dict[bytes, list[str]] = field(default_factory=dict)
    kinds: dict[bytes, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[bytes]:
        return list(self.contents)

    def text(self, keep: Callable[[bytes], bool] = lambda _: True) -> str:
        return "\n".join(part for key, values in self.contents.items() if keep(key)
                         for part in (key.decode("latin-1"), *values))

    def strings(self) -> dict[bytes, str]:
        """Every plain string value: index entries, codes, idempotency records, counters."""
        return {k: v[0] for k, v in self.contents.items() if self.kinds[k] == "string"}


def dump(r: Any) -> Dump:
    kinds = {key: type_of(r, key) for key in scan(r)}
    return Dump({key: [readable(b) for b in blobs_of(r, key, kind)]
                 for key, kind in kinds.items()}, kinds)


# -- card numbers ----------------------------------------------------------------------------


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def random_pan(prefix: str, length: int) -> str:
    body = prefix + "".join(random.choices(string.digits, k=length - len(prefix) - 1))
    return next(body + check for check in string.digits if luhn(body + check))


def grouped(pan: str, separator: str) -> str:
    return separator.join(pan[i:i + 4] for i in range(0, len(pan), 4))


def masked(pan: str) -> str:
    return f"**** **** **** {pan[-4:]}"


# Digit runs as a card number may be written: single spaces or dashes between digits. Runs glued
# to letters are parts of hex digests or ids, not something a person typed.
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d)*(?![0-9A-Za-z])")
SECURITY_CODE = re.compile(r"(?i)\b(?:cvv2?|cvc2?|security\s+code)\W{0,3}(?:is\W{0,3})?\d{3,4}\b")


def clock_reading(digits: str, now_ms: int) -> bool:
    """An epoch-millisecond time near now (a timestamp, a stream id, a queue score)."""
    return any(abs(int(digits[i:i + 13]) - now_ms) < 60 * DAY_MS
               for i in range(len(digits) - 12))


def card_numbers_in(text: str, now_ms: int) -> list[str]:
    """Luhn-valid 13 to 19 digit runs, separators stripped, that are not clock readings."""
    found = []
    for match in DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn(digits) and not clock_reading(digits, now_ms):
            found.append(match.group())
    return found


def without_separators(text: str) -> str:
    return re.sub(r"(?<=\d)[ -](?=\d)", "", text)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG, from before the app starts until the test ends."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_no_card_number_or_security_code_reaches_redis_or_a_log_line(
        debug_logs: pytest.LogCaptureFixture, client: Client, keys: Keys, redis_sync: Any
        ) -> None:
    pans = [random_pan("4", 16), random_pan("51", 16), random_pan("37", 15),
            random_pan("6011", 16), random_pan("4", 13), random_pan("55", 16),
            random_pan("4", 19)]
    cvv = [f"{random.randint(100, 999)}", f"{random.randint(1000, 9999)}",
           f"{random.randint(100, 999)}"]
    visitor, chat_id, call_id = unique("visitor"), unique("web"), unique("CA")
    order = f"A-{random.randint(1000, 9999)}"
    line = random.randint(0, 9999)
    dialled, e164 = f"+1 (555) 010-{line:04d}", f"+1555010{line:04d}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    chat = {"identities": [{"kind": "chat", "value": visitor}]}
    caller = {"identities": [{"kind": "phone", "value": dialled}]}

    # The chat: card numbers typed in a sentence, as an entity, as a fact (also as a number).
    chatted = await call(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [
            {"id": "t1", "role": "customer", "ts": at(start),
             "text": f"I was charged twice on {grouped(pans[0], ' ')}, CVV {cvv[0]}"},
            {"id": "t2", "role": "bot", "text": "Sorry! Which order?",
             "ts": at(start + timedelta(seconds=5)),
             "intent": f"card.captured {grouped(pans[6], ' ')}"},
            {"id": "t3", "role": "customer", "ts": at(start + timedelta(seconds=30)),
             "text": f"Order {order}. Call me on {dialled}. Card {pans[1]} security code is "
                     f"{cvv[1]}",
             "intent": "billing.double_charge", "confidence": 0.9,
             "entities": {"card": grouped(pans[2], "-"), "card_number": int(pans[3]),
                          "order": order, "note": f"cvc: {cvv[2]}"}}],
        "facts": {"order_number": order, "card_on_file": grouped(pans[4], "-"),
                  "card_digits": int(pans[5])}})
    customer_id = chatted["customer_id"]
    await call(client, "PUT", f"/v1/customers/{ref('chat', visitor)}/facts", keys("bot"),
               {"facts": {"payment": {"value": f"card {pans[6]}, CVV {cvv[0]}"}}})

    # The hand-off's summary and intent repeat what the customer said.
    handoff = await call(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": chat_id, "channel": "chat", "source": "acme-bot",
        "reason": "customer_request", "queue": "billing", "continuation": True,
        "intent": f"billing.refund to {pans[4]}",
        "summary": f"Charged twice on card {grouped(pans[0], '-')} (CVV {cvv[0]}), {order}"},
        expect=201)

    # The IVR: the code, a card "verified" as an identity, the card read out on the call.
    await call(client, "POST", f"/v1/continuations/{handoff['continuation_code']}/redeem",
               keys("ivr"), {"customer": caller, "conversation_id": call_id, "channel": "voice",
                             "source": "acme-ivr"})
    await call(client, "POST", "/v1/verifications", keys("ivr"), {
        "customer": caller, "conversation_id": call_id, "channel": "voice",
        "identity": {"kind": "x-card", "value": grouped(pans[3], " ")}, "method": "pin"})
    await call(client, "POST", f"/v1/conversations/{call_id}/turns", keys("ivr"), {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [{"id": "c1", "role": "customer", "ts": at(start + timedelta(minutes=12)),
                   "text": f"my card is {grouped(pans[1], '-')} cvv {cvv[1]}",
                   "entities": {"dtmf_card": pans[2]}}]})

    # The agent takes it, reads everything and closes it with a note.
    await call(client, "POST", f"/v1/handoffs/{handoff['id']}/accept", keys("agent"),
               {"agent_id": "agent-7"})
    await call(client, "GET", f"/v1/customers/{customer_id}/context", keys("agent"))
    await call(client, "GET", f"/v1/customers/{customer_id}/turns", keys("agent"))
    await call(client, "POST", f"/v1/handoffs/{handoff['id']}/resolve", keys("agent"),
               {"note": f"refunded to {grouped(pans[5], ' ')}"})

    # Whatever the service itself logs about such a request is masked too, traceback included.
    try:
        raise ValueError(f"could not parse {pans[0]}")
    except ValueError:
        logs.logger("handoff.api").exception("rejected turn %s", grouped(pans[1], " "))

    now = int(time.time() * 1000)
    store = dump(redis_sync)
    stored, scanned = store.text(), len(store.keys)
    records = [*debug_logs.get_records("setup"), *debug_logs.records]
    logged = "\n".join(logging.Formatter("%(name)s %(message)s").format(r) for r in records)
    found = card_numbers_in(stored, now)
    where = f"in {scanned} keys scanned"
    assert not found, f"{len(found)} Luhn-valid card number(s) {where}: {found[:5]}"
    for pan in pans:
        assert pan not in without_separators(stored), f"card ...{pan[-4:]} stored {where}"
        assert masked(pan) in stored, f"no masked form of card ...{pan[-4:]} {where}"
    assert not SECURITY_CODE.findall(stored), f"security codes stored {where}"
    assert order in stored and dialled in stored and e164 in stored, (
        f"order number or phone number not kept intact {where}")

    lines = f"in {len(records)} log records"
    assert not card_numbers_in(logged, now), f"a card number {lines}"
    for pan in pans:
        assert pan not in without_separators(logged), f"card ...{pan[-4:]} {lines}"
    assert masked(pans[1]) in logged and masked(pans[0]) in logged, f"not masked {lines}"
    assert not SECURITY_CODE.findall(logged), f"security codes {lines}"


# -- sensitive identities and extra patterns ---------------------------------------------------


async def test_a_sensitive_account_number_is_never_stored_yet_still_finds_the_customer(
        make_client: AppFactory, keys: Keys, redis_sync: Any) -> None:
    app = await make_client(sensitive_kinds={"acme": ["account"]})
    account, caller = "88812345", {"identities": [{"kind": "phone", "value": "+15550104477"}]}
    called = await call(app, "POST", "/v1/conversations/CA-1/turns", keys("ivr"), {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [{"id": "c1", "role": "system", "text": "Caller entered the account by DTMF",
                   "ts": at(datetime.now(UTC))}]})
    verified = await call(app, "POST", "/v1/verifications", keys("ivr"), {
        "customer": caller, "conversation_id": "CA-1", "channel": "voice",
        "identity": {"kind": "account", "value": account}, "method": "pin", "level": "high"})
    assert verified["customer_id"] == called["customer_id"]

    store = dump(redis_sync)
    assert account not in store.text(), (
        f"the account number is in Redis ({len(store.keys)} keys scanned): "
        f"{[k for k, v in store.contents.items() if account in k.decode() + ''.join(v)]}")

    brief = await call(app, "GET", f"/v1/customers/{ref('account', account)}/context",
                       keys("agent"))
    assert brief["customer"]["id"] == called["customer_id"]
    shown = {(i["kind"], i["value"], i["verified"]) for i in brief["customer"]["identities"]}
    assert ("account", "****2345", True) in shown
    assert brief["verifications"][0]["identity"] == {"kind": "account", "value": "****2345"}
    assert account not in json.dumps(brief)


async def test_a_tenants_own_pattern_masks_all_but_the_last_four_for_that_tenant_only(
        make_client: AppFactory, keys: Keys, redis_sync: Any) -> None:
    app = await make_client(mask_patterns={"acme": [r"\b\d{3}-\d{2}-\d{4}\b"]})
    ssn = f"{random.randint(100, 899)}-{random.randint(10, 99)}-{random.randint(1000, 9999)}"
    hidden = f"***-**-{ssn[-4:]}"
    for tenant in ("acme", "globex"):
        await call(app, "POST", "/v1/conversations/web-1/turns", keys("bot", tenant), {
            "customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
            "channel": "chat", "source": "bot",
            "turns": [{"id": "t1", "role": "customer", "text": f"My SSN is {ssn}",
                       "ts": at(datetime.now(UTC))}]})

    acme = await call(app, "GET", f"/v1/customers/{ref('chat', 'visitor-1')}/turns",
                      keys("agent"))
    globex = await call(app, "GET", f"/v1/customers/{ref('chat', 'visitor-1')}/turns",
                        keys("agent", "globex"))

    assert [t["text"] for t in acme["items"]] == [f"My SSN is {hidden}"]
    assert [t["text"] for t in globex["items"]] == [f"My SSN is {ssn}"]
    store = dump(redis_sync)
    assert ssn not in store.text(lambda k: b"{acme" in k)
    assert hidden in store.text(lambda k: b"{acme" in k)
    assert ssn in store.text(lambda k: b"{globex" in k)


# -- a rich scenario: chat, hand-offs, a redeemed code, a verification, a call, agent reads ----


@dataclass
class Story:
    """One customer's journey across channels, and what identifies it."""

    customer_id: str
    merged_id: str
    visitor: str
    email: str
    phone: str
    account: str
    chat_id: str
    call_id: str
    order: str
    handoffs: list[str]
    open_code: str

    @property
    def refs(self) -> list[str]:
        return [self.customer_id, ref("chat", self.visitor), ref("phone", self.phone),
                ref("account", self.account)]

    @property
    def ids(self) -> list[str]:
        return [self.customer_id, self.merged_id]

    @property
    def traces(self) -> list[str]:
        """Everything that names this customer or its hand-offs."""
        return [*self.ids, *self.handoffs, self.visitor, self.email, self.phone, self.account,
                self.chat_id, self.call_id, self.order, f"code:{self.open_code}"]


async def rich_story(client: Client, keys: Keys) -> Story:
    visitor, chat_id, call_id = unique("visitor"), unique("web"), unique("CA")
    email = f"{unique('ana')}@example.com"
    order, account = f"A-{random.randint(1000, 9999)}", str(random.randint(10**7, 10**8 - 1))
    phone = f"+1555010{random.randint(0, 9999):04d}"
    chat = {"identities": [{"kind": "chat", "value": visitor}, {"kind": "email", "value": email}]}
    caller = {"identities": [{"kind": "phone", "value": phone}]}
    now = datetime.now(UTC).replace(microsecond=0)

    chatted = await call(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [{"id": "t1", "role": "customer", "text": f"Order {order} was charged twice",
                   "ts": at(now - timedelta(minutes=5))}],
        "facts": {"order_number": order}})
    first = await call(client, "POST", "/v1/handoffs",
                       {**keys("bot"), "Idempotency-Key": unique("idem")}, {
        "customer": chat, "conversation_id": chat_id, "channel": "chat",
        "reason": "customer_request", "queue": "billing", "continuation": True,
        "summary": f"Charged twice for {order}"}, expect=201)

    # The caller is known on the phone line before the code joins the call to the chat.
    called = await call(client, "POST", f"/v1/conversations/{call_id}/turns", keys("ivr"), {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [{"id": "c1", "role": "customer", "text": "Agent please",
                   "ts": at(now - timedelta(minutes=1))}]})
    wrong = f"{(int(first['continuation_code']) + 1) % 1_000_000:06d}"
    redeem = {"customer": caller, "conversation_id": call_id, "channel": "voice",
              "source": "acme-ivr"}
    assert await status_of(client, "POST", f"/v1/continuations/{wrong}/redeem", keys("ivr"),
                           redeem) == 404
    redeemed = await call(client, "POST",
                          f"/v1/continuations/{first['continuation_code']}/redeem",
                          keys("ivr"), redeem)
    assert redeemed["customer_id"] == chatted["customer_id"] != called["customer_id"]
    await call(client, "POST", "/v1/verifications", keys("ivr"), {
        "customer": caller, "conversation_id": call_id, "channel": "voice",
        "identity": {"kind": "account", "value": account}, "method": "pin", "level": "high"})

    # A second request for a human whose code nobody has used yet.
    second = await call(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": chat_id, "channel": "chat",
        "reason": "bot_failure", "queue": "sales", "continuation": True}, expect=201)

    await call(client, "POST", f"/v1/handoffs/{first['id']}/accept", keys("agent"),
               {"agent_id": "agent-7"})
    await call(client, "GET", f"/v1/customers/{ref('phone', phone)}/context",
               {**keys("agent"), "X-Agent-Id": "agent-7"})
    await call(client, "GET", f"/v1/customers/{chatted['customer_id']}/turns",
               {**keys("agent"), "X-Agent-Id": "agent-7"})
    return Story(customer_id=chatted["customer_id"], merged_id=called["customer_id"],
                 visitor=visitor, email=email, phone=phone, account=account, chat_id=chat_id,
                 call_id=call_id, order=order, handoffs=[first["id"], second["id"]],
                 open_code=second["continuation_code"])


async def bystander(client: Client, keys: Keys) -> tuple[str, Json]:
    """Another customer of the same tenant, with a pending hand-off in the same queue."""
    visitor, chat_id = unique("visitor"), unique("web")
    chat = {"identities": [{"kind": "chat", "value": visitor}]}
    out = await call(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [{"id": "t1", "role": "customer", "text": "Where is my parcel?",
                   "ts": at(datetime.now(UTC))}],
        "facts": {"order_number": "B-2002"}})
    await call(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": chat_id, "channel": "chat",
        "reason": "customer_request", "queue": "billing", "continuation": True,
        "summary": "Parcel late"}, expect=201)
    return out["customer_id"], await brief_of(client, keys, out["customer_id"])


async def brief_of(client: Client, keys: Keys, customer: str) -> Json:
    brief = await call(client, "GET", f"/v1/customers/{customer}/context", keys("agent"))
    brief.pop("generated_at", None)
    return brief


# -- erasure ---------------------------------------------------------------------------------

# Left after an erasure on purpose, holding no identifier of the customer: the audit trail (its
# entries name customers by keyed hash only), counters of wrong codes per key and address, the
# invalidation stream (index key names, which are digests), idempotency keys (hand-off id and
# a hash of the request, so a retried request is refused instead of creating a new hand-off) and
# the effort KPIs' hourly and daily counts per queue (numbers of hand-offs and seconds waited).
KEPT_AFTER_ERASURE = re.compile(
    rb"^hf:(\{acme\}:(audit(:[0-9a-f]+)?|rate:.*|idem:.*|kpi:[hd]\d+(:w:.*)?)|invalidations)$")
# One more, for a day: a tombstone per erased customer id, holding nothing but "1", so that a
# write which resolved the customer just before the erasure cannot bring it back.
TOMBSTONE = re.compile(rb"^hf:\{acme:cus_[0-9A-Z]{26}\}:erased$")
DAY_MS = 86_400_000


async def test_erasing_a_customer_removes_every_key_index_entry_handoff_code_and_event_of_it(
        client: Client, keys: Keys, redis_sync: Any) -> None:
    await bystander(client, keys)
    before = set(scan(redis_sync))
    story = await rich_story(client, keys)
    assert redis_sync.exists(redis_keys.code("acme", story.open_code)) == 1

    answer = await call(client, "DELETE", f"/v1/customers/{ref('chat', story.visitor)}",
                        keys("admin"))

    assert answer["customer_id"] == story.customer_id
    assert sorted(answer["customers"]) == sorted(story.ids)
    assert answer["handoffs"] == 2
    assert answer["keys"] >= 10
    assert answer["index_entries"] == 5  # the visitor, the phone, the account, chat and call
    assert answer["queue_events"] == 3  # two hand-offs requested, one accepted
    store = dump(redis_sync)
    n = f"({len(store.keys)} keys scanned)"
    tombstones = [k for k in store.keys if TOMBSTONE.match(k)]
    assert sorted(tombstones) == sorted(
        redis_keys.customer("acme", c).erased.encode() for c in story.ids)
    for k in tombstones:
        assert redis_sync.get(k) == b"1" and 0 < redis_sync.pttl(k) <= DAY_MS
    named = [k for k in store.keys if any(c.encode() in k for c in story.ids)
             and not TOMBSTONE.match(k)]
    assert not named, f"keys of the erased customer remain {n}: {named}"
    pointing = {k: v for k, v in store.strings().items() if any(c in v for c in story.ids)}
    assert not pointing, f"index entries still point at the erased customer {n}: {pointing}"
    for ho_id in story.handoffs:
        assert redis_keys.handoff("acme", ho_id).encode() not in store.contents
    queued = [k for k in store.keys if b":q:" in k
              and any(h in v for v in store.contents[k] for h in story.handoffs)]
    assert not queued, f"queue entries of the erased hand-offs remain: {queued}"
    assert redis_keys.code("acme", story.open_code).encode() not in store.contents
    events = store.text(lambda k: k == redis_keys.queue_events("acme").encode())
    assert "Parcel late" in events
    assert not [t for t in story.traces if t in events], "queue events still mention it"
    left = sorted(k for k in set(store.keys) - before
                  if not KEPT_AFTER_ERASURE.match(k) and not TOMBSTONE.match(k))
    assert not left, f"keys its activity created are left {n}: {left}"
    everything = store.text(lambda k: not TOMBSTONE.match(k))
    traces = [t for t in story.traces if t not in story.handoffs and t in everything]
    assert not traces, f"the store still names the erased customer {n}: {traces}"
    # An idempotency record keeps the id of the hand-off it made, so that a retried request is
    # refused rather than replayed; nothing else may name the erased hand-offs.
    idempotency = redis_keys.idempotency("acme", "", "").removesuffix(":").encode()
    rest = store.text(lambda k: not k.startswith(idempotency))
    assert not [h for h in story.handoffs if h in rest], f"its hand-offs are named {n}"


async def test_erasing_a_customer_leaves_another_customer_of_the_tenant_untouched(
        client: Client, keys: Keys) -> None:
    other, before = await bystander(client, keys)
    story = await rich_story(client, keys)

    await call(client, "DELETE", f"/v1/customers/{story.customer_id}", keys("admin"))

    assert await brief_of(client, keys, other) == before
    queue = await call(client, "GET", "/v1/handoffs?queue=billing", keys("agent"))
    assert [h["customer_id"] for h in queue["items"]] == [other]


async def test_an_erased_customer_is_gone_for_good_by_every_ref(
        client: Client, keys: Keys) -> None:
    story = await rich_story(client, keys)
    await call(client, "DELETE", f"/v1/customers/{story.customer_id}", keys("admin"))

    assert await status_of(client, "DELETE", f"/v1/customers/{story.customer_id}",
                           keys("admin")) == 404
    for customer in [*story.refs, story.merged_id]:
        assert await status_of(client, "GET", f"/v1/customers/{customer}/context",
                               keys("agent")) == 404, customer
    for ho_id in story.handoffs:
        assert await status_of(client, "GET", f"/v1/handoffs/{ho_id}", keys("agent")) == 404


async def test_a_post_that_found_the_customer_just_before_its_erasure_does_not_bring_it_back(
        client: Client, keys: Keys, monkeypatch: pytest.MonkeyPatch, redis_sync: Any) -> None:
    visitor, chat_id = unique("visitor"), unique("web")
    body = {"customer": {"identities": [{"kind": "chat", "value": visitor}]}, "channel": "chat",
            "turns": [{"id": "t1", "role": "customer", "text": "Please forget me",
                       "ts": "2026-11-23T10:00:00Z"}]}
    first = await call(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), body)
    cus_id = first["customer_id"]
    store = client.app[DEPS].store
    real_write = store.customers.write

    async def erase_first(tenant: str, target: str, *args: Any, **kw: Any) -> Any:
        # The post has resolved the customer; the admin's erasure completes before it writes.
        monkeypatch.setattr(store.customers, "write", real_write)
        await call(client, "DELETE", f"/v1/customers/{target}", keys("admin"))
        return await real_write(tenant, target, *args, **kw)

    monkeypatch.setattr(store.customers, "write", erase_first)
    body["turns"][0] |= {"id": "t2", "text": "My card is 4111 1111 1111 1111"}
    late = await client.post(f"/v1/conversations/{chat_id}/turns", headers=keys("bot"),
                             json=body)

    assert late.status == 404, await late.text()
    assert (await late.json())["detail"] == "the customer no longer exists"
    left = [k for k in scan(redis_sync) if cus_id.encode() in k]
    assert left == [redis_keys.customer("acme", cus_id).erased.encode()]
    assert await status_of(client, "GET", f"/v1/customers/{cus_id}/context",
                           keys("agent")) == 404
    # The next post starts afresh, as a customer nobody has seen.
    again = await call(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), body)
    assert again["customer_id"] != cus_id


async def test_only_an_admin_of_the_customers_own_tenant_may_erase_it(
        client: Client, keys: Keys, redis_sync: Any) -> None:
    story = await rich_story(client, keys)
    before = dump(redis_sync).text(lambda k: story.customer_id.encode() in k)

    for role in ("bot", "ivr", "agent"):
        assert await status_of(client, "DELETE", f"/v1/customers/{story.customer_id}",
                               keys(role)) == 403, role
    for customer in story.refs:
        assert await status_of(client, "DELETE", f"/v1/customers/{customer}",
                               keys("admin", "globex")) == 404, customer

    assert dump(redis_sync).text(lambda k: story.customer_id.encode() in k) == before
    assert (await brief_of(client, keys, story.customer_id))["customer"]["id"] == (
        story.customer_id)


async def test_the_audit_trail_keeps_an_erased_customers_reads_without_naming_it(
        client: Client, keys: Keys, redis_sync: Any) -> None:
    story = await rich_story(client, keys)
    await call(client, "DELETE", f"/v1/customers/{story.customer_id}", keys("admin"))

    page = await call(client, "GET", f"/v1/admin/audit?customer={story.customer_id}",
                      keys("admin"))

    assert [e["what"] for e in page["items"]] == ["turns", "context", "accept"]
    audit = dump(redis_sync).text(lambda k: b":audit" in k)
    for text in (json.dumps(page), audit):
        named = [t for t in story.traces if t in text]
        assert not named, f"the audit trail names the erased customer: {named}"


# -- the audit trail -------------------------------------------------------------------------


async def agent_key_id(client: Client, keys: Keys) -> str:
    listed = await call(client, "GET", "/v1/admin/keys", keys("admin"))
    (key_id,) = [k["id"] for k in listed["items"] if k["role"] == "agent"]
    return str(key_id)


async def follow_events_once(client: Client, path: str, headers: dict[str, str]) -> None:
    response = await client.get(path, headers=headers)
    try:
        assert response.status == 200, await response.text()
        assert await asyncio.wait_for(response.content.readline(), 5)
    finally:
        response.close()


async def agent_reads_everything(client: Client, keys: Keys) -> tuple[str, str]:
    """A chat with a hand-off; an agent reads context, transcript and events, then accepts."""
    visitor = unique("visitor")
    chat = {"identities": [{"kind": "chat", "value": visitor}]}
    out = await call(client, "POST", "/v1/conversations/web-1/turns", keys("bot"), {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [{"id": "t1", "role": "customer", "text": "Help", "ts": at(datetime.now(UTC))}]})
    handoff = await call(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": "web-1", "reason": "customer_request"},
        expect=201)
    agent = {**keys("agent"), "X-Agent-Id": "agent-7"}
    await call(client, "GET", f"/v1/customers/{ref('chat', visitor)}/context", agent)
    await call(client, "GET", f"/v1/customers/{out['customer_id']}/turns", agent)
    await follow_events_once(client, f"/v1/customers/{out['customer_id']}/events", agent)
    await call(client, "POST", f"/v1/handoffs/{handoff['id']}/accept", keys("agent"),
               {"agent_id": "agent-9"})
    return out["customer_id"], visitor


async def test_every_agent_read_and_accept_is_one_audit_entry_an_admin_can_read(
        client: Client, keys: Keys) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    customer_id, visitor = await agent_reads_everything(client, keys)
    finished = datetime.now(UTC) + timedelta(seconds=1)
    key_id = await agent_key_id(client, keys)

    by_id = await call(client, "GET", f"/v1/admin/audit?customer={customer_id}", keys("admin"))
    by_identity = await call(client, "GET", f"/v1/admin/audit?customer={ref('chat', visitor)}",
                             keys("admin"))

    assert by_identity == by_id
    entries = by_id["items"]
    assert [(e["what"], e["agent_id"]) for e in entries] == [
        ("accept", "agent-9"), ("events", "agent-7"), ("turns", "agent-7"),
        ("context", "agent-7")]
    for entry in entries:
        assert (entry["key_id"], entry["role"], entry["address"]) == (key_id, "agent",
                                                                      "127.0.0.1")
        moment = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
        assert started <= moment <= finished, entry


async def test_only_an_admin_key_may_read_the_audit_trail(
        client: Client, keys: Keys) -> None:
    customer_id, _ = await agent_reads_everything(client, keys)
    for role in ("bot", "ivr", "agent"):
        for query in ("", f"?customer={customer_id}"):
            assert await status_of(client, "GET", f"/v1/admin/audit{query}",
                                   keys(role)) == 403, role


async def test_another_tenants_admin_sees_none_of_the_reads(
        client: Client, keys: Keys) -> None:
    customer_id, visitor = await agent_reads_everything(client, keys)
    globex = keys("admin", "globex")

    assert (await call(client, "GET", f"/v1/admin/audit?customer={customer_id}",
                       globex))["items"] == []
    assert (await call(client, "GET", "/v1/admin/audit", globex))["items"] == []
    assert await status_of(client, "GET", f"/v1/admin/audit?customer={ref('chat', visitor)}",
                           globex) == 404


# -- API keys --------------------------------------------------------------------------------


async def new_key(client: Client, keys: Keys, role: str = "agent", name: str = "desk"
                  ) -> Json:
    return await call(client, "POST", "/v1/admin/keys", keys("admin"),
                      {"role": role, "name": name}, expect=201)


async def works(client: Client, secret: str) -> int:
    """The status an agent key gets for the queue: 200 when it works."""
    return await status_of(client, "GET", "/v1/handoffs", bearer(secret))


async def test_a_new_keys_secret_is_answered_once_and_never_listed_or_stored(
        client: Client, keys: Keys, redis_sync: Any) -> None:
    made = await new_key(client, keys)
    assert made["key"] and made["id"].startswith("key_") and made["role"] == "agent"
    assert await works(client, made["key"]) == 200

    listed = await call(client, "GET", "/v1/admin/keys", keys("admin"))

    text = json.dumps(listed)
    assert made["key"] not in text
    assert not [s for s in keys.secrets.values() if s in text]
    assert all("key" not in item for item in listed["items"])
    assert {(k["id"], k["name"]) for k in listed["items"]} >= {(made["id"], "desk")}
    assert made["key"] not in dump(redis_sync).text()


async def test_a_revoked_key_is_refused_at_once_by_every_process_that_had_it_cached(
        client: Client, make_client: AppFactory, keys: Keys) -> None:
    other = await make_client()
    made = await new_key(client, keys)
    assert await works(client, made["key"]) == 200
    assert await works(other, made["key"]) == 200

    revoked = await call(client, "DELETE", f"/v1/admin/keys/{made['id']}", keys("admin"))

    assert revoked["revoked_at"] is not None and "key" not in revoked
    assert await works(client, made["key"]) == 401
    assert await works(other, made["key"]) == 401


async def test_rotating_without_grace_stops_the_old_key_at_once_and_starts_the_new_one(
        client: Client, make_client: AppFactory, keys: Keys) -> None:
    other = await make_client()
    old = await new_key(client, keys)
    assert await works(other, old["key"]) == 200

    new = await call(client, "POST", f"/v1/admin/keys/{old['id']}/rotate", keys("admin"),
                     {"grace_seconds": 0}, expect=201)

    assert new["id"] != old["id"] and (new["role"], new["name"]) == ("agent", "desk")
    for app in (client, other):
        assert await works(app, old["key"]) == 401
        assert await works(app, new["key"]) == 200


async def test_rotating_with_grace_keeps_both_keys_working_and_shows_when_the_old_one_ends(
        client: Client, keys: Keys) -> None:
    old = await new_key(client, keys)
    started = datetime.now(UTC)

    new = await call(client, "POST", f"/v1/admin/keys/{old['id']}/rotate", keys("admin"),
                     {"grace_seconds": 60}, expect=201)

    assert await works(client, old["key"]) == 200
    assert await works(client, new["key"]) == 200
    listed = {k["id"]: k for k in (await call(client, "GET", "/v1/admin/keys",
                                              keys("admin")))["items"]}
    ends = datetime.fromisoformat(listed[old["id"]]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=58) <= ends - started <= timedelta(seconds=62)
    assert listed[new["id"]]["expires_at"] is None


async def test_another_tenants_admin_cannot_see_revoke_or_rotate_a_key(
        client: Client, keys: Keys) -> None:
    made = await new_key(client, keys)
    globex = keys("admin", "globex")

    assert await status_of(client, "DELETE", f"/v1/admin/keys/{made['id']}", globex) == 404
    assert await status_of(client, "POST", f"/v1/admin/keys/{made['id']}/rotate", globex,
                           {}) == 404
    listed = await call(client, "GET", "/v1/admin/keys", globex)
    assert made["id"] not in json.dumps(listed)
    assert await works(client, made["key"]) == 200


async def handoff_keys(settings: Settings, *args: str) -> list[str]:
    """Run `handoff keys ...` against the test Redis; its output lines."""
    env = {**os.environ, "HANDOFF_REDIS_URL": str(settings.redis_url),
           "HANDOFF_REDIS_CLUSTER": "true" if settings.redis_cluster else "false"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "handoff", "keys", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_the_command_line_creates_a_key_that_works_and_lists_it_without_its_secret(
        client: Client, settings: Settings) -> None:
    created = await handoff_keys(settings, "create", "--tenant", "acme", "--role", "agent",
                                 "--name", "cli-desk")
    secret = created[-1]
    assert await works(client, secret) == 200

    listed = await handoff_keys(settings, "list", "--tenant", "acme")

    assert secret not in "\n".join(listed)
    (line,) = [x for x in listed if "name=cli-desk" in x]
    assert "role=agent" in line and "active" in line


async def test_the_command_line_revokes_and_rotates_keys_a_running_app_had_cached(
        client: Client, settings: Settings) -> None:
    first = (await handoff_keys(settings, "create", "--tenant", "acme", "--role", "agent"))
    second = (await handoff_keys(settings, "create", "--tenant", "acme", "--role", "agent"))
    assert await works(client, first[-1]) == 200 and await works(client, second[-1]) == 200
    first_id, second_id = (re.search(r"key_\w+", x[0]).group() for x in (first, second))

    await handoff_keys(settings, "revoke", first_id)
    rotated = await handoff_keys(settings, "rotate", second_id)

    assert await works(client, first[-1]) == 401
    assert await works(client, second[-1]) == 401
    assert await works(client, rotated[-1]) == 200


# -- guessing --------------------------------------------------------------------------------


def redeem_body(conversation_id: str, phone: str = "+15550104477") -> Json:
    return {"customer": {"identities": [{"kind": "phone", "value": phone}]},
            "conversation_id": conversation_id, "channel": "voice", "source": "acme-ivr"}


def wrong_codes(right: str) -> Iterator[str]:
    while True:
        guess = f"{random.randint(0, 999_999):06d}"
        if guess != right:
            yield guess


async def chat_with_code(client: Client, keys: Keys) -> Json:
    visitor = {"identities": [{"kind": "chat", "value": unique("visitor")}]}
    return await call(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": visitor, "conversation_id": unique("web"), "channel": "chat",
        "reason": "customer_request", "continuation": True}, expect=201)


async def test_a_key_guessing_codes_is_stopped_at_its_ceiling_and_the_owner_still_gets_in(
        make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(redeem_attempts_per_minute=10)
    handoff = await chat_with_code(client, keys)
    code = handoff["continuation_code"]
    other_ivr = await new_key(client, keys, role="ivr", name="second-ivr")
    await within_one_minute(5)
    guesses = wrong_codes(code)

    answers = []
    for n in range(11):  # a new call from a new number each time: only the key's ceiling holds
        r = await client.post(f"/v1/continuations/{next(guesses)}/redeem", headers=keys("ivr"),
                              json=redeem_body(f"CA-guess-{n}", f"+1555010{n:04d}"))
        answers.append((r.status, r.headers.get("Retry-After")))
        await r.read()

    assert [s for s, _ in answers] == [404] * 10 + [429], "10 guesses of 1,000,000, then no more"
    assert 0 < int(str(answers[-1][1])) <= 60
    async with from_address(client, OTHER_ADDRESS) as elsewhere:
        r = await elsewhere.post(f"/v1/continuations/{code}/redeem",
                                 headers=bearer(other_ivr["key"]), json=redeem_body("CA-real"))
        assert r.status == 200, await r.text()
        joined = await r.json()
    assert (joined["customer_id"], joined["handoff_id"]) == (handoff["customer_id"],
                                                             handoff["id"])


async def test_a_burst_of_concurrent_guesses_from_one_key_gets_at_most_its_ceiling_of_tries(
        make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(redeem_attempts_per_minute=10)
    handoff = await chat_with_code(client, keys)
    await within_one_minute(5)
    guesses = wrong_codes(handoff["continuation_code"])

    async def guess(n: int) -> tuple[int, str | None]:
        r = await client.post(f"/v1/continuations/{next(guesses)}/redeem", headers=keys("ivr"),
                              json=redeem_body(f"CA-burst-{n}", f"+1555010{n:04d}"))
        await r.read()
        return r.status, r.headers.get("Retry-After")

    answers = await asyncio.gather(*(guess(n) for n in range(30)))

    statuses = [s for s, _ in answers]
    assert set(statuses) <= {404, 429}, statuses
    assert 1 <= statuses.count(404) <= 10, statuses
    assert all(retry and int(retry) > 0 for s, retry in answers if s == 429)


async def test_an_address_that_keeps_failing_to_authenticate_is_slowed_but_valid_keys_get_in(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(auth_failures_per_minute=5)
    await within_one_minute(5)

    answers = []
    for n in range(8):
        r = await app.get("/v1/handoffs", headers=bearer(f"hk_wrong_{n}"))
        answers.append((r.status, r.headers.get("Retry-After")))
        await r.read()
    valid = await app.get("/v1/handoffs", headers=keys("agent"))

    wrong = await app.get("/v1/handoffs", headers=bearer("hk_wrong_again"))

    assert [s for s, _ in answers] == [401] * 5 + [429] * 3
    assert all(0 < int(str(retry)) <= 60 for s, retry in answers if s == 429)
    assert valid.status == 200, "one misbehaving client must not lock out its neighbours"
    assert wrong.status == 429 and 0 < int(wrong.headers["Retry-After"]) <= 60


# -- retention -------------------------------------------------------------------------------

# Operational keys, not customer data, expire by other rules: API key records, their id index
# and each tenant's key set (kept until an operator removes them), the set of tenants, the
# deployment's index and panel token secrets, the invalidation stream (bounded by length),
# failed authentication counters (per address digest and minute) and each tenant's re-ask
# counters (numbers by topic, nothing of a customer).
OPERATIONAL = re.compile(
    rb"^hf:(key:.*|keyids|tenants|secret:(index|desk)|invalidations|authfail:.*"
    rb"|\{[a-z0-9_-]+\}:(keys|reasks))$")


async def test_every_key_of_a_customer_and_its_handoffs_expires_within_the_tenants_retention(
        make_client: AppFactory, keys: Keys, redis_sync: Any) -> None:
    retention_ms = 2 * DAY_MS
    app = await make_client(tenant_retention_days={"acme": 2})
    story = await rich_story(app, keys)

    scanned = scan(redis_sync)
    ttls = {k: redis_sync.pttl(k) for k in scanned if not OPERATIONAL.match(k)}

    wrong = {k: t for k, t in ttls.items() if not 0 < t <= retention_ms}
    assert not wrong, f"keys without a TTL within 2 days ({len(scanned)} scanned): {wrong}"
    kinds = [f"{{acme:{story.customer_id}}}", "{acme:i:", "{acme:c:", "{acme:code:",
             "{acme}:ho:", "{acme}:q:", "{acme}:audit", "{acme}:events"]
    for kind in kinds:
        assert any(kind.encode() in k for k in ttls), f"no {kind} key was checked"
    customer = [t for k, t in ttls.items() if story.customer_id.encode() in k]
    assert min(customer) > retention_ms - 60_000, "a write did not push the expiry forward"


async def test_an_address_blocked_on_one_process_is_refused_by_another_but_not_a_good_key(
        make_client: Any, keys: Keys, redis_sync: Any) -> None:
    first = await make_client(auth_failures_per_minute=3)
    second = await make_client(auth_failures_per_minute=3)
    await within_one_minute(5)
    for n in range(4):
        assert await works(first, f"hk_not-a-key-{n}") in (401, 429)
    (counter,) = redis_sync.scan_iter(match=redis_keys.auth_failures("*", 0).removesuffix(":0"))

    heard, answers = False, []
    for n in range(40):  # the other process hears of the block through Redis within moments
        counted = int(redis_sync.get(counter) or 0)
        answers.append(await works(second, f"hk_other-{n}"))
        if int(redis_sync.get(counter) or 0) == counted:  # refused without counting it
            heard = True
            break
        await asyncio.sleep(0.05)

    assert heard and set(answers) == {429}
    assert await status_of(second, "GET", "/v1/handoffs", keys("agent")) == 200
