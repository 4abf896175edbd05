"""A bounded soak: Redis and one `handoff serve`, 200 clients of mixed traffic and 100 event
subscribers over ~50 customers, then an audit of statuses, turns and events.

    python -m tests.faults.soak --seconds 20

Exits non-zero on any 5xx, lost or duplicated turn, or missed / out-of-order event.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis

from handoff.store import keys as redis_keys
from tests.conftest import RedisServer, free_port
from tests.faults.service import Service, SseReader, mint_key, transcript_ids

CLIENTS = 200
SUBSCRIBERS = 100
CUSTOMERS = 50
TS = "2026-11-23T10:02:00Z"


@dataclass
class Sent:
    """One turn append: when it was sent and whether it was acknowledged."""

    turn_id: str
    sent_at: float
    acknowledged: bool = False


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int | str] = field(default_factory=Counter)
    turns: dict[int, list[Sent]] = field(default_factory=dict)
    customer_ids: dict[int, str] = field(default_factory=dict)


def turn(turn_id: str) -> dict[str, Any]:
    return {"id": turn_id, "role": "customer", "text": f"message {turn_id}", "ts": TS}


async def call(session: aiohttp.ClientSession, tally: Tally, method: str, url: str,
               headers: dict[str, str], body: dict[str, Any] | None = None
               ) -> tuple[int, Any]:
    tally.requests += 1
    try:
        async with session.request(method, url, headers=headers, json=body) as r:
            payload = await r.json(content_type=None)
            tally.statuses[r.status] += 1
            return r.status, payload
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.statuses[type(exc).__name__] += 1
        return 0, None


async def client(n: int, session: aiohttp.ClientSession, url: str, keys: dict[str, Any],
                 tally: Tally, stop: asyncio.Event) -> None:
    rng = random.Random(n)
    k = 0
    while not stop.is_set():
        c = rng.randrange(CUSTOMERS)
        roll = rng.random()
        k += 1
        if roll < 0.7:
            sent = Sent(f"c{n}-{k}", time.monotonic())
            tally.turns[c].append(sent)
            status, _ = await call(session, tally, "POST",
                                   f"{url}/v1/conversations/soak-{c}/turns", keys["bot"],
                                   {"turns": [turn(sent.turn_id)]})
            sent.acknowledged = status == 200
        elif roll < 0.9:
            await call(session, tally, "GET",
                       f"{url}/v1/customers/{tally.customer_ids[c]}/context", keys["agent"])
        else:
            status, ho = await call(
                session, tally, "POST", f"{url}/v1/handoffs",
                {**keys["bot"], "Idempotency-Key": f"ho-{n}-{k}"},
                {"customer": {"identities": [{"kind": "chat", "value": f"soak-visitor-{c}"}]},
                 "conversation_id": f"soak-{c}", "reason": "customer_request", "priority": 3,
                 "queue": "billing", "summary": "soak"})
            if status == 201:
                await call(session, tally, "POST", f"{url}/v1/handoffs/{ho['id']}/accept",
                           keys["agent"], {"agent_id": f"agent-{n}"})


def check_subscribers(subscribers: list[SseReader], tally: Tally,
                      stored: dict[int, list[str]], problems: list[str]) -> tuple[int, int]:
    """Each subscriber saw every turn sent after it subscribed, in the stored order, once."""
    expected_events = seen_events = 0
    for s, sub in enumerate(subscribers):
        c = s % CUSTOMERS
        seen = sub.turn_ids()
        must = [t.turn_id for t in tally.turns[c]
                if t.acknowledged and t.sent_at > sub.opened_at]
        expected_events += len(must)
        seen_events += len(seen)
        missed = set(must) - set(seen)
        if missed:
            problems.append(f"subscriber {s}: missed {len(missed)} turn events")
        order = [i for i in stored[c] if i in set(seen)]
        if seen != order:
            problems.append(f"subscriber {s}: events out of order or repeated")
        if sub.ending() is not None:
            problems.append(f"subscriber {s}: stream ended early with {sub.ending()}")

    return expected_events, seen_events


async def soak(service: Service, redis_port: int, keys: dict[str, Any], seconds: float
               ) -> list[str]:
    url = service.url
    tally = Tally(turns={c: [] for c in range(CUSTOMERS)})
    problems: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for c in range(CUSTOMERS):
            status, body = await call(session, tally, "POST",
                                      f"{url}/v1/conversations/soak-{c}/turns", keys["bot"], {
                "customer": {"identities": [{"kind": "chat", "value": f"soak-visitor-{c}"}]},
                "channel": "chat", "source": "soak-bot", "turns": [turn(f"first-{c}")]})
            assert status == 200, body
            tally.customer_ids[c] = body["customer_id"]
            tally.turns[c].append(Sent(f"first-{c}", 0.0, True))
        subscribers = [SseReader(session, f"{url}/v1/customers/{tally.customer_ids[s % CUSTOMERS]}"
                                 "/events", keys["agent"]) for s in range(SUBSCRIBERS)]
        reading = [asyncio.create_task(s.run()) for s in subscribers]
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in subscribers)), 30)
        rss_start = service.rss_kb()
        stop = asyncio.Event()
        load = [asyncio.create_task(client(n, session, url, keys, tally, stop))
                for n in range(CLIENTS)]
        # One RSS sample per tenth of the run: a line that levels off is a cache filling up, one
        # that keeps climbing is a leak.
        rss_trend = [rss_start]
        for _ in range(10):
            await asyncio.sleep(seconds / 10)
            rss_trend.append(service.rss_kb())
        stop.set()
        await asyncio.gather(*load)
        rss_end = service.rss_kb()
        await asyncio.sleep(1.0)  # let the last events reach their subscribers
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)

        peek = redis.Redis(port=redis_port)
        acknowledged_total = found_total = 0
        stored: dict[int, list[str]] = {}
        try:
            for c, sent in tally.turns.items():
                customer = tally.customer_ids[c]
                acked = {s.turn_id for s in sent if s.acknowledged}
                stored[c] = await transcript_ids(session, url, customer, keys["agent"])
                xlen = peek.xlen(redis_keys.customer("acme", customer).turns)
                acknowledged_total += len(acked)
                found_total += len(set(stored[c]))
                if len(stored[c]) != len(set(stored[c])):
                    problems.append(f"{customer}: duplicated turns")
                if acked - set(stored[c]):
                    problems.append(f"{customer}: lost {sorted(acked - set(stored[c]))[:5]}")
                if xlen != len(set(stored[c])):
                    problems.append(f"{customer}: XLEN {xlen} but {len(stored[c])} turns")
                extra = set(stored[c]) - acked
                if extra:
                    problems.append(f"{customer}: unacknowledged turns {sorted(extra)[:5]}")
        finally:
            peek.close()

    expected_events, seen_events = check_subscribers(subscribers, tally, stored, problems)
    fives = sum(n for k, n in tally.statuses.items() if isinstance(k, int) and k >= 500)
    errors = sum(n for k, n in tally.statuses.items() if isinstance(k, str))
    if fives:
        problems.append(f"{fives} responses were 5xx")
    if errors:
        problems.append(f"{errors} requests failed without an answer")
    print(f"seconds {seconds:g}; requests sent {tally.requests}; statuses "
          f"{dict(sorted(tally.statuses.items(), key=str))}; 5xx {fives}")
    print(f"turns acknowledged {acknowledged_total}, found {found_total}")
    print(f"RSS start {rss_start} kB, end {rss_end} kB; every tenth of the run (MB): "
          + " ".join(f"{kb / 1024:.0f}" for kb in rss_trend))
    print(f"SSE turn events expected (sent while subscribed) {expected_events}, "
          f"seen {seen_events}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="handoff-soak-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        store = RedisServer(root / "redis", free_port())
        service = Service("", free_port(), root / "serve.log",
                          {"HANDOFF_EVENTS_MAXLEN": "100000"})
        try:
            store.start()
            service.redis_url = store.url
            service.start()
            keys = {role: {"Authorization": f"Bearer {mint_key(store.url, role)}"}
                    for role in ("bot", "agent")}
            problems = asyncio.run(soak(service, store.port, keys, args.seconds))
        finally:
            service.stop()
            store.stop()
    for problem in problems[:50]:
        print(f"VIOLATION: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
