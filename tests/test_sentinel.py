"""A primary under Redis Sentinel dies mid-load: the service follows the failover by itself,
answers 503 with Retry-After (never another 5xx) while there is no primary, and with
`HANDOFF_WRITE_ACK=replica` no acknowledged turn, verification or hand-off is lost. Just before
the kill the replica stops receiving the primary's stream (`Topology.cut_replica_off`), so
there is something to lose: `local` mode loses it, `replica` mode never acknowledged it.

Each test starts its own primary, replica and three sentinels on loopback (tests/sentinels.py)
and a real `handoff serve` that knows only the sentinels. The figures of each failover (writes
acknowledged, lost, 503s, time to recover) are written to tests/artifacts/failover-<mode>.txt.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from handoff.programs.doctor import sentinel as sentinel_findings
from handoff.store.diagnostics import SentinelFacts, ServerFacts
from tests.conftest import CLUSTER, free_port
from tests.faults.service import Service, _env, mint_key, transcript_ids
from tests.sentinels import SERVICE, Topology

pytestmark = pytest.mark.skipif(CLUSTER, reason="runs its own Sentinel set-up")

ARTIFACTS = Path(__file__).parent / "artifacts"
WRITERS = 12
ACKED_BEFORE_KILL = 2000  # turns acknowledged before the primary is killed, at least
# Once the replica is cut off, the kill waits for this many more acknowledged writes (local
# mode gets them at once; replica mode acknowledges none) or this many seconds.
CUT_OFF_ACKS = 50
CUT_OFF_SECONDS = 3.0
RECOVERY_DEADLINE = 45.0  # seconds after the kill by which writes must succeed again
TS = "2026-11-23T10:02:00Z"


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    ha = Topology(tmp_path / "ha")
    try:
        ha.start()
        yield ha
    finally:
        ha.stop()


def sentinel_env(topology: Topology, **extra: str) -> dict[str, str]:
    return {"HANDOFF_REDIS_SENTINELS": topology.addresses,
            "HANDOFF_REDIS_SENTINEL_SERVICE": SERVICE, **extra}


@dataclass
class Ledger:
    """Every write acknowledged (2xx), by kind, and every status seen."""

    turns: dict[str, set[str]] = field(default_factory=dict)       # customer -> turn ids
    verified: dict[str, set[str]] = field(default_factory=dict)    # customer -> accounts
    handoffs: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    acked_at_cut: int = 0
    killed_at: float | None = None
    recovered_at: float | None = None
    failover_seconds: float = 0.0

    def turn_count(self) -> int:
        return sum(len(ids) for ids in self.turns.values())

    def acknowledged(self) -> int:
        return (self.turn_count() + sum(len(v) for v in self.verified.values())
                + len(self.handoffs))


def phone(w: int) -> str:
    return f"+1555010{w:04d}"


async def writer(session: aiohttp.ClientSession, url: str, ivr: dict[str, str], w: int,
                 ledger: Ledger, stop: asyncio.Event) -> None:
    """One caller's IVR: turns, now and then a verification or a hand-off, as fast as it can."""
    customer = {"identities": [{"kind": "phone", "value": phone(w)}]}
    call = f"call-{w}"
    n = 0
    while not stop.is_set():
        n += 1
        if n % 25 == 0:
            path, expect = "/v1/handoffs", 201
            body: dict[str, Any] = {
                "customer": customer, "conversation_id": call, "channel": "voice",
                "reason": "customer_request", "priority": 2, "queue": "billing"}
            headers = {**ivr, "Idempotency-Key": f"ho-{w}-{n}"}
        elif n % 10 == 0:
            account = f"7{w:02d}{n:05d}"
            path, expect = "/v1/verifications", 200
            body = {"customer": customer, "conversation_id": call, "channel": "voice",
                    "identity": {"kind": "account", "value": account}, "method": "pin"}
            headers = ivr
        else:
            ids = [f"w{w}-{n}a", f"w{w}-{n}b"]
            path, expect = f"/v1/conversations/{call}/turns", 200
            body = {"customer": customer, "channel": "voice",
                    "turns": [{"id": i, "role": "customer", "text": f"message {i}", "ts": TS}
                              for i in ids]}
            headers = ivr
        sent_at = time.monotonic()
        try:
            async with session.post(url + path, json=body, headers=headers) as r:
                status, answer = r.status, await r.json(content_type=None)
                retry_after = r.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            ledger.unexpected.append(f"{path}: {type(exc).__name__}")
            continue
        ledger.statuses[status] += 1
        if status == expect:
            # Recovered: a write sent after the kill, so served by the new primary.
            if (ledger.killed_at is not None and sent_at > ledger.killed_at
                    and ledger.recovered_at is None):
                ledger.recovered_at = time.monotonic()
            cus = answer["customer_id"]
            if path == "/v1/handoffs":
                ledger.handoffs.add(answer["id"])
            elif path == "/v1/verifications":
                ledger.verified.setdefault(cus, set()).add(body["identity"]["value"])
            else:
                ledger.turns.setdefault(cus, set()).update(t["id"] for t in body["turns"])
        elif status == 503 and retry_after and int(retry_after) >= 1:
            await asyncio.sleep(0.05)
        else:
            ledger.unexpected.append(f"{path}: {status} {answer}")


async def readiness(session: aiohttp.ClientSession, url: str, seen: Counter[str],
                    stop: asyncio.Event) -> None:
    """What /readyz says through the failover."""
    while not stop.is_set():
        try:
            async with session.get(url + "/readyz") as r:
                seen[f"{r.status} {(await r.json())['redis']}"] += 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            seen[type(exc).__name__] += 1
        await asyncio.sleep(0.1)


async def settled(check: Callable[[], bool], seconds: float) -> None:
    """Return once `check()` holds, or after `seconds` (the caller asserts what it needs)."""
    for _ in range(max(1, int(seconds / 0.05))):
        if check():
            return
        await asyncio.sleep(0.05)


async def fail_over_under_load(topology: Topology, tmp_path: Path, mode: str
                               ) -> tuple[Ledger, dict[str, int], Counter[str]]:
    """Load, cut the replica off, SIGKILL the primary, let the sentinels promote the replica,
    restart the dead server (as its supervisor would: it rejoins as a replica), and read back
    every write."""
    primary_url = topology.primary.url
    ivr_key, agent_key = await asyncio.gather(
        asyncio.to_thread(mint_key, primary_url, "ivr"),
        asyncio.to_thread(mint_key, primary_url, "agent"))
    ivr = {"Authorization": f"Bearer {ivr_key}"}
    agent = {"Authorization": f"Bearer {agent_key}"}
    service = Service("", free_port(), tmp_path / "serve.log",
                      extra_env=sentinel_env(topology, HANDOFF_WRITE_ACK=mode))
    ledger, ready = Ledger(), Counter[str]()
    try:
        await asyncio.to_thread(service.start)
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            stop = asyncio.Event()
            load = [asyncio.create_task(writer(session, service.url, ivr, w, ledger, stop))
                    for w in range(WRITERS)]
            probe = asyncio.create_task(readiness(session, service.url, ready, stop))
            await settled(lambda: ledger.turn_count() >= ACKED_BEFORE_KILL, 60)
            await asyncio.to_thread(topology.cut_replica_off)
            ledger.acked_at_cut = ledger.acknowledged()
            await settled(lambda: ledger.acknowledged() >= ledger.acked_at_cut + CUT_OFF_ACKS,
                          CUT_OFF_SECONDS)
            before_kill = ledger.acknowledged()
            topology.primary.kill()  # SIGKILL, under load
            ledger.killed_at = time.monotonic()
            ledger.failover_seconds = await asyncio.to_thread(topology.wait_for_failover)
            await asyncio.to_thread(topology.primary.start)  # back, as a replica
            # A second of writes after the first that succeeded again, or the deadline.
            await settled(lambda: ledger.recovered_at is not None
                          and time.monotonic() - ledger.recovered_at >= 1.0,
                          RECOVERY_DEADLINE - (time.monotonic() - ledger.killed_at))
            stop.set()
            await asyncio.gather(*load, probe)

            lost = {"turns": 0, "verifications": 0, "handoffs": 0, "before kill": before_kill}
            for customer, ids in ledger.turns.items():
                found = set(await transcript_ids(session, service.url, customer, agent))
                lost["turns"] += len(ids - found)
            for customer, accounts in ledger.verified.items():
                async with session.get(f"{service.url}/v1/customers/{customer}/context",
                                       headers=agent) as r:
                    assert r.status == 200, await r.text()
                    brief = await r.json()
                held = {v["identity"]["value"] for v in brief["verifications"]}
                lost["verifications"] += len(accounts - held)
            for ho_id in ledger.handoffs:
                async with session.get(f"{service.url}/v1/handoffs/{ho_id}",
                                       headers=agent) as r:
                    lost["handoffs"] += r.status == 404
    finally:
        service.stop()
    report(mode, ledger, lost, ready)
    return ledger, lost, ready


def report(mode: str, ledger: Ledger, lost: dict[str, int], ready: Counter[str]) -> None:
    recovered = ((ledger.recovered_at or 0) - (ledger.killed_at or 0)
                 if ledger.recovered_at else None)
    lines = [f"write ack: {mode}",
             f"acknowledged before the kill: {lost['before kill']} "
             f"({lost['before kill'] - ledger.acked_at_cut} after the replica was cut off)",
             f"acknowledged in all: {ledger.acknowledged()} ({ledger.turn_count()} turns, "
             f"{sum(len(v) for v in ledger.verified.values())} verifications, "
             f"{len(ledger.handoffs)} hand-offs)",
             f"lost: {lost['turns']} turns, {lost['verifications']} verifications, "
             f"{lost['handoffs']} hand-offs",
             f"statuses: {dict(sorted(ledger.statuses.items()))}",
             f"sentinels named the new primary after {ledger.failover_seconds:.1f} s",
             "writes succeeded again after "
             + (f"{recovered:.1f} s" if recovered is not None else "never"),
             f"/readyz: {dict(ready)}"]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"failover-{mode}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def assert_recovered_with_503s_only(ledger: Ledger, ready: Counter[str]) -> None:
    assert not ledger.unexpected, ledger.unexpected[:10]
    assert set(ledger.statuses) <= {200, 201, 503}, ledger.statuses
    assert ledger.statuses[503] > 0, "the failover went unnoticed: the kill came too late?"
    assert ledger.recovered_at is not None, "writes never succeeded again after the failover"
    assert ready["503 no primary"] > 0 and ready["200 up"] > 0, ready


async def test_with_replica_acks_a_failover_loses_no_acknowledged_write(
        topology: Topology, tmp_path: Path) -> None:
    ledger, lost, ready = await fail_over_under_load(topology, tmp_path, "replica")
    assert lost["before kill"] >= ACKED_BEFORE_KILL
    assert_recovered_with_503s_only(ledger, ready)
    assert (lost["turns"], lost["verifications"], lost["handoffs"]) == (0, 0, 0), lost


async def test_with_local_acks_a_failover_is_followed_and_its_losses_are_counted(
        topology: Topology, tmp_path: Path) -> None:
    ledger, lost, ready = await fail_over_under_load(topology, tmp_path, "local")
    assert lost["before kill"] >= ACKED_BEFORE_KILL
    assert_recovered_with_503s_only(ledger, ready)
    # Asynchronous replication: what the primary acknowledged once the replica was cut off is
    # gone, which is what replica mode is for; the figure is in the artifact.
    lost_in_all = lost["turns"] + lost["verifications"] + lost["handoffs"]
    assert 0 < lost_in_all <= lost["before kill"], lost


def doctor(topology: Topology, **extra: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "handoff", "doctor"],
                          capture_output=True, text=True, timeout=60,
                          env=_env("", sentinel_env(topology, **extra)), cwd=os.getcwd())
    return done.returncode, done.stdout


def test_doctor_checks_the_sentinels_quorum_replicas_and_write_acks(
        topology: Topology) -> None:
    code, out = doctor(topology)
    assert code == 0, out
    assert "ok    sentinels    3 of 3 answer for 'handoff'" in out, out
    assert "ok    quorum       OK 3 usable Sentinels" in out, out
    assert f"ok    replicas     1 reachable (127.0.0.1:{topology.replica.port})" in out, out
    assert "warn  write ack    writes are acknowledged before a replica has them" in out, out

    # One replica: the failover promotes it and leaves none to confirm replica acks.
    code, out = doctor(topology, HANDOFF_WRITE_ACK="replica")
    assert code == 0, out
    assert "warn  write ack    HANDOFF_WRITE_ACK=replica with fewer than two replicas" in out, out

    primary = redis.Redis(port=topology.primary.port)
    try:
        primary.config_set("min-replicas-to-write", 1)
    finally:
        primary.close()
    code, out = doctor(topology)
    assert code == 0, out
    assert "ok    write ack    min-replicas-to-write 1: a primary cut off" in out, out

    topology.sentinels[2].kill()
    topology.replica.kill()
    code, out = doctor(topology)
    assert code == 1, out
    assert "warn  sentinels    2 of 3 answer" in out, out
    assert "FAIL  replicas     no replica is reachable" in out, out


def test_replica_acks_pass_the_doctor_with_two_replicas_and_not_with_one() -> None:
    def write_ack(*replicas: str) -> tuple[str, str]:
        found = SentinelFacts(SERVICE, {f"127.0.0.1:{26379 + n}": "ok" for n in range(3)},
                              "OK 3 usable Sentinels", True, dict.fromkeys(replicas, "ok"))
        (finding,) = [f for f in sentinel_findings(found, ServerFacts(info={}, config={}),
                                                   write_ack="replica")
                      if f.check == "write ack"]
        return finding.level, finding.message

    assert write_ack("10.0.0.12:6379", "10.0.0.13:6379")[0] == "ok"
    level, message = write_ack("10.0.0.12:6379")
    assert level == "warn" and "after a failover writes answer 503" in message
