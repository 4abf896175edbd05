"""The operator commands: `handoff context` and `handoff tail` against a live server with an
agent key, and `handoff doctor` against well and badly configured Redis servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handoff.client import HandoffClient
from handoff.programs.demo import scenario
from handoff.programs.doctor import examine
from handoff.store.diagnostics import ServerFacts
from tests.conftest import CLUSTER, Keys, RedisServer, free_port

Client = TestClient[Any, Any]


def env(**values: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    return {**clean, **values}


async def handoff_cli(*args: str, environment: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "handoff", *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def agent_env(client: Client, keys: Keys) -> dict[str, str]:
    return env(HANDOFF_URL=str(client.make_url("")), HANDOFF_KEY=keys.secrets[("acme", "agent")])


async def test_context_prints_the_verified_account_and_the_order_after_the_seed_scenario(
        client: Client, keys: Keys) -> None:
    await scenario(str(client.make_url("")), {r: keys.secrets[("acme", r)]
                                              for r in ("bot", "ivr", "agent")})
    code, out, err = await handoff_cli("context", "account:88812345",
                                       environment=agent_env(client, keys))
    assert code == 0, err
    assert "88812345" in out and "VERIFIED by pin (high) on voice" in out
    assert "valid until" in out and "min left" in out
    assert "order_number   A-1001" in out
    assert "Do not ask for: account" in out
    assert "Journey: chat web-7f3a" in out and "voice CA9f2" in out
    assert "frustration: repeated request for a human" in out
    assert "voice customer Agent please" in out


async def test_context_of_an_unknown_customer_says_404_and_exits_non_zero(
        client: Client, keys: Keys) -> None:
    code, _, err = await handoff_cli("context", "account:404404",
                                     environment=agent_env(client, keys))
    assert code == 1 and "404 Not Found" in err


async def test_context_without_a_url_or_key_explains_what_it_needs() -> None:
    code, _, err = await handoff_cli("context", "account:1", environment=env())
    assert code != 0 and "HANDOFF_URL" in err and "HANDOFF_KEY" in err


async def test_tail_prints_each_new_turn_and_stops_cleanly_on_ctrl_c(client: Client,
                                                                      keys: Keys) -> None:
    async with HandoffClient(str(client.make_url("")), keys.secrets[("acme", "bot")]) as bot:
        created = await bot.append_turns("web-1", {
            "customer": {"identities": [{"kind": "chat", "value": "visitor-9"}]},
            "channel": "chat", "turns": [{"id": "t1", "role": "customer", "text": "hello",
                                          "ts": "2026-11-23T10:02:00Z"}]})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handoff", "tail", "chat:visitor-9", "--since", "0-0",
            env=agent_env(client, keys), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            assert process.stdout is not None
            first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            await bot.append_turns("web-1", {"turns": [{
                "id": "t2", "role": "customer", "text": "anyone there?",
                "ts": "2026-11-23T10:03:00Z"}]})
            second = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            process.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert "turn.appended" in first and "chat customer: hello" in first
    assert created.customer_id in first
    assert "10:03:00 turn.appended" in second and "anyone there?" in second
    assert code == 0


async def test_tail_of_the_queue_replays_then_follows_its_handoffs(client: Client,
                                                                     keys: Keys) -> None:
    async with HandoffClient(str(client.make_url("")), keys.secrets[("acme", "bot")]) as bot:
        await bot.append_turns("web-1", {
            "customer": {"identities": [{"kind": "chat", "value": "visitor-9"}]},
            "channel": "chat", "turns": [{"id": "t1", "role": "customer", "text": "hi",
                                          "ts": "2026-11-23T10:02:00Z"}]})
        made = await bot.request_handoff({
            "customer": {"identities": [{"kind": "chat", "value": "visitor-9"}]},
            "conversation_id": "web-1", "reason": "customer_request", "queue": "billing"})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handoff", "tail", "--queue", "--since", "0-0",
            env=agent_env(client, keys), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            assert process.stdout is not None
            requested = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            await bot.cancel(made.id)
            cancelled = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 30)
    assert "handoff.requested" in requested and f"{made.id} queue billing" in requested
    assert "handoff.cancelled" in cancelled and "--:--:--" not in cancelled


# -- doctor ----------------------------------------------------------------------------------


@pytest.fixture
def careless_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis that would lose context: no append-only file, and free to evict keys."""
    server = RedisServer(tmp_path, free_port(), options=(
        "--appendonly", "no", "--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def doctor(redis_url: str, cluster: bool = False) -> subprocess.CompletedProcess[str]:
    extra = {"HANDOFF_REDIS_CLUSTER": "true"} if cluster else {}
    return subprocess.run([sys.executable, "-m", "handoff", "doctor"], capture_output=True,
                          text=True, timeout=60,
                          env=env(HANDOFF_REDIS_URL=redis_url, **extra))


def test_doctor_fails_a_redis_without_an_append_only_file_or_with_eviction(
        careless_redis: str) -> None:
    run = doctor(careless_redis)
    assert run.returncode == 1, run.stdout
    assert "FAIL  persistence  appendonly is off" in run.stdout
    assert "FAIL  memory       maxmemory-policy volatile-lru could evict" in run.stdout
    assert "2 problem(s)" in run.stdout


def test_doctor_passes_the_redis_the_tests_run_on(redis_server: RedisServer) -> None:
    run = doctor(redis_server.url, cluster=CLUSTER)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok    persistence  append-only file on" in run.stdout
    assert "ok    fsync        appendfsync always" in run.stdout
    assert "ok    memory       maxmemory-policy noeviction" in run.stdout
    assert "0 problem(s)" in run.stdout


def test_doctor_cannot_reach_a_redis_and_says_so() -> None:
    run = doctor(f"redis://127.0.0.1:{free_port()}/0")
    assert run.returncode == 1 and "FAIL  connect" in run.stdout


def facts(**config: str) -> ServerFacts:
    return ServerFacts(info={"redis_version": "7.2.4", "cluster_enabled": 0},
                       config={"appendonly": "yes", "appendfsync": "always", "maxmemory": "0",
                               "maxmemory-policy": "noeviction", **config},
                       latencies_ms=[0.1, 0.2])


def levels(found: ServerFacts, cluster: bool = False) -> dict[str, str]:
    return {f.check: f.level for f in examine(found, cluster_configured=cluster)}


def test_everysec_is_a_warning_and_no_fsync_a_problem() -> None:
    assert levels(facts(appendfsync="everysec"))["fsync"] == "warn"
    assert levels(facts(appendfsync="no"))["fsync"] == "FAIL"


def test_an_eviction_policy_without_a_memory_limit_is_only_a_warning() -> None:
    assert levels(facts(**{"maxmemory-policy": "allkeys-lru"}))["memory"] == "warn"
    assert levels(facts(**{"maxmemory-policy": "allkeys-lru", "maxmemory": "1000"}))[
        "memory"] == "FAIL"


def test_a_cluster_node_used_as_a_single_server_is_a_problem_and_an_old_redis_too() -> None:
    node = ServerFacts(info={"redis_version": "6.0.9", "cluster_enabled": 1},
                       config=facts().config)
    found = levels(node)
    assert (found["cluster"], found["version"], found["latency"]) == ("FAIL", "FAIL", "warn")
    assert levels(node, cluster=True)["cluster"] == "ok"
