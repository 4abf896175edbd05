"""`python -m bench.alerts`: how long a supervisor waits for a risk alert.

From just before a customer turn that raises an alert is POSTed to the moment a supervisor's
live alert stream (`GET /v1/alerts/events`) has it, and the moment a webhook receiver subscribed
to `alert.raised` has it, while 100 customers write at once. It starts its own valkey-server
(AOF, `appendfsync always`) and `handoff serve` (on core 0) in a temporary folder and stops them
again; the writers, the stream, the receiver and a supervisor who acknowledges every alert as it
arrives (so the next round can raise the same kinds again) share this process, on core 1.

Each customer posts, per round, one turn of each alerting kind (legal, churn, complaint,
vulnerability, frustration) between plain turns, one turn every `--interval` seconds (jittered),
and waits for its alerts to be acknowledged before the next round. `--interval 0` writes flat
out: the figures are then mostly queueing on the service's one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.loadclients import percentile
from bench.servers import CLIENT_CORE, Processes, start_redis, start_service, wait_ready
from handoff.services import apikeys
from handoff.store import Store
from handoff.store.connection import connect

TENANT = "bench"
SAID = {"legal": "Sort this out or I take legal action", "churn": "Just close my account then",
        "complaint": "I want to make a formal complaint", "frustration": "I am fed up with this",
        "vulnerability": "I lost my job and cannot afford this"}
PLAIN = "Still waiting for the refund on order A-1001"
NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


@dataclass
class Seen:
    """When each alert's turn was posted, and when the stream and the receiver had it."""

    posted: dict[str, float] = field(default_factory=dict)  # turn id -> send time
    streamed: dict[str, float] = field(default_factory=dict)
    hooked: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    answered: dict[str, list[float]] = field(default_factory=lambda: {"plain": [],
                                                                      "alerting": []})
    acked: dict[str, asyncio.Event] = field(default_factory=dict)  # turn id -> acknowledged
    errors: list[str] = field(default_factory=list)
    # Set once the receiver has as many alerts as were posted (known when writing is over).
    expected: int = sys.maxsize
    all_hooked: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if len(self.hooked) >= self.expected:
            self.all_hooked.set()


async def mint(redis_url: str) -> dict[str, str]:
    """Keys of the bench tenant, minted in the store as `handoff keys create` does."""
    client = connect(redis_url, cluster=False, timeout=5.0, max_connections=2)
    blocking = connect(redis_url, cluster=False, timeout=5.0, max_connections=1, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=100)
    try:
        now = int(time.time() * 1000)
        return {role: (await apikeys.create(store, tenant=TENANT, role=role, name="bench",
                                            now_ms=now))[0]
                for role in ("bot", "admin", "supervisor")}
    finally:
        await store.close()


async def receiver(seen: Seen) -> web.AppRunner:
    """A webhook endpoint on loopback that notes when each alert arrives."""
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        at = time.perf_counter()
        event = json.loads(body)
        if event["type"] == "alert.raised":
            turn = event["data"]["record"]["turn"]["id"]
            if turn in seen.hooked:
                seen.duplicates += 1
            seen.hooked.setdefault(turn, at)
            seen.check()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def follow(http: aiohttp.ClientSession, base: str, key: str, seen: Seen,
                 ready: asyncio.Event) -> None:
    """The supervisor: reads the alert stream and acknowledges each alert as it arrives."""
    headers = {"Authorization": f"Bearer {key}"}
    acks: set[asyncio.Task[None]] = set()

    async def ack(alert_id: str, turn: str) -> None:
        async with http.post(f"{base}/v1/alerts/{alert_id}/ack", headers=headers,
                             json={"supervisor_id": "bench"}) as r:
            if r.status != 200:
                seen.errors.append(f"ack {r.status}")
        seen.acked.setdefault(turn, asyncio.Event()).set()

    async with http.get(f"{base}/v1/alerts/events", headers=headers, timeout=NO_TIMEOUT) as r:
        ready.set()
        kind = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "alert.raised":
                at = time.perf_counter()
                alert = json.loads(line[6:])["record"]
                turn = alert["turn"]["id"]
                if turn in seen.streamed:
                    seen.duplicates += 1
                seen.streamed.setdefault(turn, at)
                task = asyncio.create_task(ack(alert["id"], turn))
                acks.add(task)
                task.add_done_callback(acks.discard)


async def customer(http: aiohttp.ClientSession, base: str, key: str, n: int, rounds: int,
                   interval: float, seen: Seen) -> None:
    """One customer chatting: each round a turn of every alerting kind among plain ones."""
    headers = {"Authorization": f"Bearer {key}"}
    pick = random.Random(n)
    for r in range(rounds):
        kinds = list(SAID)
        pick.shuffle(kinds)
        alerting = []
        for k, kind in enumerate(kinds):
            for what, text in (("plain", PLAIN), ("alerting", SAID[kind])):
                if interval:
                    await asyncio.sleep(interval * (0.5 + pick.random()))
                turn = f"c{n}-r{r}-{k}-{what[0]}"
                if what == "alerting":
                    alerting.append(turn)
                    seen.acked.setdefault(turn, asyncio.Event())
                    seen.posted[turn] = time.perf_counter()
                start = time.perf_counter()
                async with http.post(f"{base}/v1/conversations/bench-{n}/turns",
                                     headers=headers, json={
                        "customer": {"identities": [{"kind": "chat", "value": f"v-{n}"}]},
                        "channel": "chat", "turns": [{
                            "id": turn, "role": "customer", "text": text,
                            "ts": datetime.now(UTC).isoformat()}]}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        seen.errors.append(f"turn {resp.status}")
                seen.answered[what].append(time.perf_counter() - start)
        # The same kinds alert again once these are acknowledged.
        await asyncio.wait_for(asyncio.gather(*(seen.acked[t].wait() for t in alerting)), 60)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="handoff-bench-alerts-") as folder:
        procs = Processes(Path(folder))
        try:
            redis = start_redis(procs)
            keys = await mint(redis.url)
            seen = Seen()
            hook_runner = await receiver(seen)
            site = web.TCPSite(hook_runner, "127.0.0.1", 0)
            await site.start()
            hook_port = hook_runner.addresses[0][1]
            service = wait_ready([start_service(procs, redis.url, env={
                "HANDOFF_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
                "HANDOFF_LOG_LEVEL": "WARNING"})])[0]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                async with http.post(f"{service.base}/v1/admin/webhooks", json={
                        "url": f"http://127.0.0.1:{hook_port}/hook", "events": ["alert.raised"]},
                        headers={"Authorization": f"Bearer {keys['admin']}"}) as r:
                    assert r.status == 201, await r.text()
                ready = asyncio.Event()
                stream = asyncio.create_task(
                    follow(http, service.base, keys["supervisor"], seen, ready))
                await asyncio.wait_for(ready.wait(), 10)
                started = time.perf_counter()
                await asyncio.gather(*(customer(http, service.base, keys["bot"], n,
                                                args.rounds, args.interval, seen)
                                       for n in range(args.customers)))
                elapsed = time.perf_counter() - started
                seen.expected = len(seen.posted)
                seen.check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(seen.all_hooked.wait(), 30)
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
            await hook_runner.cleanup()
        finally:
            procs.stop_all()

    def delays(arrived: dict[str, float]) -> list[float]:
        return [(arrived[t] - sent) * 1000 for t, sent in seen.posted.items() if t in arrived]

    def figures(ms: list[float]) -> dict[str, float]:
        return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
                "max_ms": max(ms, default=0.0), "received": len(ms)}

    return {"alerts": len(seen.posted), "customers": args.customers, "rounds": args.rounds,
            "interval_s": args.interval, "seconds": elapsed,
            "turns_per_s": sum(len(v) for v in seen.answered.values()) / elapsed,
            "sse": figures(delays(seen.streamed)), "webhook": figures(delays(seen.hooked)),
            "post_plain": figures([s * 1000 for s in seen.answered["plain"]]),
            "post_alerting": figures([s * 1000 for s in seen.answered["alerting"]]),
            "duplicates": seen.duplicates, "errors": len(seen.errors)}


def report(r: dict[str, Any]) -> str:
    pace = ("flat out" if not r["interval_s"]
            else f"one turn every {r['interval_s']} s each, jittered")
    rows = [f"{r['alerts']} alerts from {r['customers']} customers writing at once ({pace}), "
            f"{r['rounds']} round(s) of 5 kinds; {r['turns_per_s']:.0f} turns/s posted over "
            f"{r['seconds']:.1f} s",
            "",
            f"| {'from the POST being sent to':<40} | {'p50':>8} | {'p99':>8} | {'max':>8} | "
            f"received |",
            f"| {'-' * 40} | {'-' * 8} | {'-' * 8} | {'-' * 8} | -------- |"]
    for key, label in (("sse", "the alert on the supervisor's stream"),
                       ("webhook", "the signed webhook at its receiver"),
                       ("post_alerting", "the answer to the alerting turn"),
                       ("post_plain", "the answer to a plain turn")):
        f = r[key]
        expected = r["alerts"] if key in ("sse", "webhook", "post_alerting") else f["received"]
        rows.append(f"| {label:<40} | {f['p50_ms']:>5.1f} ms | {f['p99_ms']:>5.1f} ms | "
                    f"{f['max_ms']:>5.0f} ms | {f['received']}/{expected} |")
    rows += ["", f"duplicates: {r['duplicates']}, failed requests: {r['errors']}"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between one customer's turns (0: flat out)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with contextlib.suppress(OSError):  # the writers and readers share the client core
        os.sched_setaffinity(0, {CLIENT_CORE})
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else report(result))
    if result["errors"] or result["sse"]["received"] < result["alerts"] or (
            result["webhook"]["received"] < result["alerts"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
