"""Load that wrk cannot script: multi-step flows and long-lived event streams.

Each runs as its own process on the client core (`python -m bench.loadclients KIND ...`, keys in
BENCH_BOT_KEY / BENCH_AGENT_KEY) and prints one JSON object as its last line, so its event loop
shares nothing with the orchestrator's.

- `handoffs`: workers that each request a hand-off (bot key) and accept it (agent key), in a loop.
- `fanout`: N agents follow one customer's events while a bot posts a turn every interval; the
  delay is from just before the POST is sent to the moment each subscriber reads the event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.seed import conversation, identity_body

NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms, default=0.0)}


@dataclass
class Tally:
    pairs: list[float] = field(default_factory=list)
    creates: list[float] = field(default_factory=list)
    accepts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _handoff_pair(http: aiohttp.ClientSession, base: str, keys: tuple[str, str],
                        name: str, agent: str, tally: Tally | None) -> None:
    bot, agent_key = keys
    start = time.perf_counter()
    async with http.post(f"{base}/v1/handoffs", headers={"Authorization": f"Bearer {bot}"},
                         json={"customer": identity_body(name),
                               "conversation_id": conversation(name), "channel": "chat",
                               "source": "bench-bot", "reason": "customer_request",
                               "priority": 2, "queue": "billing",
                               "summary": "Charged twice for order A-1001"}) as r:
        created = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"create answered {r.status}: {created}")
    middle = time.perf_counter()
    async with http.post(f"{base}/v1/handoffs/{created['id']}/accept",
                         headers={"Authorization": f"Bearer {agent_key}"},
                         json={"agent_id": agent}) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"accept answered {r.status}: {body[:300]!r}")
    end = time.perf_counter()
    if tally is not None:
        tally.pairs.append(end - start)
        tally.creates.append(middle - start)
        tally.accepts.append(end - middle)


async def handoffs(base: str, keys: tuple[str, str], *, customers: list[str], warmup: float,
                   seconds: float, concurrency: int) -> dict[str, Any]:
    tally = Tally()

    async def worker(n: int, until: float, record: Tally | None) -> None:
        i = n
        while time.perf_counter() < until:
            name = customers[i % len(customers)]
            i += concurrency
            try:
                await _handoff_pair(http, base, keys, name, f"agent-{n}", record)
            except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                tally.errors.append(str(exc)[:300])

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        until = time.perf_counter() + warmup
        await asyncio.gather(*(worker(n, until, None) for n in range(concurrency)))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(worker(n, until, tally) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"pairs": len(tally.pairs), "seconds": elapsed,
            "pairs_per_s": len(tally.pairs) / elapsed, **summary_ms(tally.pairs),
            "create": summary_ms(tally.creates), "accept": summary_ms(tally.accepts),
            "errors": len(tally.errors), "first_errors": tally.errors[:3]}


@dataclass
class Fanout:
    posted_at: dict[str, float] = field(default_factory=dict)
    delays: list[float] = field(default_factory=list)
    received: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    expected: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Gate:
    """Opens once every subscriber has its answer (a stream, or a refusal)."""

    expected: int
    seen: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def arrive(self) -> None:
        self.seen += 1
        if self.seen >= self.expected:
            self.opened.set()


async def _subscribe(http: aiohttp.ClientSession, url: str, agent: str, n: int, state: Fanout,
                     gate: Gate) -> None:
    """Read one event stream; the receipt time is taken as soon as bytes arrive."""
    async with http.get(url, headers={"Authorization": f"Bearer {agent}",
                                      "Accept": "text/event-stream"}) as r:
        # The server fixes the stream position before it sends headers: from here on, every
        # posted turn reaches this subscriber.
        gate.arrive()
        if r.status != 200:
            state.errors.append(f"subscriber {n}: {r.status}")
            return
        buffer = b""
        while True:
            chunk = await r.content.readany()
            now = time.perf_counter()
            if not chunk:
                return
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                _receive(frame, now, n, state)


def _receive(frame: bytes, now: float, n: int, state: Fanout) -> None:
    if b"event: turn.appended" not in frame:
        return
    data = next(line[6:] for line in frame.split(b"\n") if line.startswith(b"data: "))
    turn_id = json.loads(data)["record"]["id"]
    sent = state.posted_at.get(turn_id)
    if sent is not None:
        state.delays.append(now - sent)
        state.received[n] = state.received.get(n, 0) + 1
        if len(state.delays) >= state.expected:
            state.complete.set()


async def _post_turns(http: aiohttp.ClientSession, base: str, bot: str, name: str,
                      run: str, events: int, interval: float, state: Fanout) -> None:
    start = time.perf_counter()
    for i in range(events):
        await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
        turn_id = f"{run}-fan-{i}"
        state.posted_at[turn_id] = time.perf_counter()
        ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        async with http.post(f"{base}/v1/conversations/{conversation(name)}/turns",
                             headers={"Authorization": f"Bearer {bot}"},
                             json={"customer": identity_body(name), "channel": "chat",
                                   "source": "bench-bot",
                                   "turns": [{"id": turn_id, "role": "customer",
                                              "text": "Is anyone there?", "ts": ts}]}) as r:
            if r.status != 200:
                state.errors.append(f"post {i}: {r.status} {await r.text()}"[:300])


async def fanout(base: str, keys: tuple[str, str], *, name: str, customer_id: str,
                 subscribers: int, seconds: float, interval: float, run: str
                 ) -> dict[str, Any]:
    bot, agent = keys
    events = max(1, round(seconds / interval))
    state = Fanout(expected=events * subscribers)
    url = f"{base}/v1/customers/{customer_id}/events"
    gate = Gate(subscribers)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=NO_TIMEOUT) as http:
        tasks = [asyncio.create_task(_subscribe(http, url, agent, n, state, gate))
                 for n in range(subscribers)]
        try:
            await asyncio.wait_for(gate.opened.wait(), 30)
            await _post_turns(http, base, bot, name, run, events, interval, state)
            # Let the last event reach everyone, but do not wait forever for a lost one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.complete.wait(), 5)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    missing = events * subscribers - len(state.delays)
    if missing:
        state.errors.append(f"{missing} of {events * subscribers} deliveries never arrived")
    return {"subscribers": subscribers, "events": events, "deliveries": len(state.delays),
            "events_per_s": 1 / interval, **summary_ms(state.delays),
            "errors": len(state.errors), "first_errors": state.errors[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadclients")
    parser.add_argument("kind", choices=("handoffs", "fanout"))
    parser.add_argument("--base", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--customers", nargs="*", default=[])
    parser.add_argument("--customer-id", default="")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--run", default="run")
    args = parser.parse_args()
    keys = (os.environ["BENCH_BOT_KEY"], os.environ["BENCH_AGENT_KEY"])
    if args.kind == "handoffs":
        result = asyncio.run(handoffs(args.base, keys, customers=args.customers,
                                      warmup=args.warmup, seconds=args.seconds,
                                      concurrency=args.concurrency))
    else:
        result = asyncio.run(fanout(args.base, keys, name=args.customers[0],
                                    customer_id=args.customer_id,
                                    subscribers=args.subscribers, seconds=args.seconds,
                                    interval=args.interval, run=args.run))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
