"""`/metrics`: what an operator's Prometheus sees after real traffic, one process or several."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from handoff.api.state import DEPS
from handoff.kernel import metrics
from handoff.programs import demo
from tests.conftest import CLUSTER, AppFactory, Keys, RedisServer, free_port
from tests.faults.service import Service
from tests.test_handoffs import accept, overdue, request_handoff

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(client: TestClient[Any, Any]) -> Samples:
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    return parse(await r.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def change(before: Samples, after: Samples) -> Callable[..., float]:
    """How much a sample moved (metrics live as long as the test process, so compare)."""
    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)
    return moved


async def test_after_the_seed_scenario_metrics_show_the_handoff_and_how_long_it_waited(
        client: TestClient[Any, Any], keys: Keys) -> None:
    before = await scrape(client)

    taken = await demo.scenario(str(client.make_url("")).rstrip("/"),
                                {role: keys.secrets[("acme", role)]
                                 for role in ("bot", "ivr", "agent")})

    after = await scrape(client)
    moved = change(before, after)
    billing = {"tenant": "acme", "queue": "billing"}
    assert moved("handoff_handoffs_total", event="requested", **billing) == 1
    assert moved("handoff_handoffs_total", event="accepted", **billing) == 1
    assert moved("handoff_handoff_time_to_accept_seconds_count", **billing) == 1
    waited = moved("handoff_handoff_time_to_accept_seconds_sum", **billing)
    assert 0 <= waited < 5  # requested and accepted within this test
    assert moved("handoff_handoff_time_to_accept_seconds_bucket", le="5.0", **billing) == 1
    assert moved("handoff_http_requests_total", method="POST",
                 route="/v1/handoffs/{id}/accept", status="200") == 1
    assert moved("handoff_http_requests_total", method="POST",
                 route="/v1/conversations/{conversation_id}/turns", status="200") == 3
    assert moved("handoff_http_request_duration_seconds_count", method="POST",
                 route="/v1/handoffs", ) == 1
    assert moved("handoff_brief_turns_count") == 1
    assert moved("handoff_brief_turns_sum") == len(taken.context.turns)
    assert moved("handoff_brief_bytes_sum") > 1000
    assert moved("handoff_redis_operation_duration_seconds_count", operation="write") >= 5
    # No customer, hand-off or identity ever becomes a label.
    exposed = " ".join(v for (_, labels) in after for _, v in labels)
    for secret in (taken.context.customer.id, taken.handoff.id, "visitor-42",
                   "88812345", "web-7f3a", "CA9f2"):
        assert secret not in exposed


async def test_every_step_of_the_lifecycle_is_counted_once_per_queue(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis) -> None:
    before = await scrape(client)
    withdrawn, served, forgotten = [await request_handoff(client, keys, queue="returns")
                                    for _ in range(3)]

    r = await client.post(f"/v1/handoffs/{withdrawn['id']}/cancel", headers=keys("bot"))
    assert r.status == 200
    assert (await accept(client, keys, served["id"], "agent-7"))[0] == 200
    assert (await accept(client, keys, served["id"], "agent-7"))[0] == 200  # a retry
    assert (await accept(client, keys, served["id"], "agent-9"))[0] == 409  # too late
    r = await client.post(f"/v1/handoffs/{served['id']}/resolve", headers=keys("agent"),
                          json={"agent_id": "agent-7"})
    assert r.status == 200
    overdue(redis_sync, forgotten["id"])
    assert (await accept(client, keys, forgotten["id"], "agent-7"))[0] == 409

    moved = change(before, await scrape(client))
    returns = {"tenant": "acme", "queue": "returns"}
    assert {event: moved("handoff_handoffs_total", event=event, **returns)
            for event in ("requested", "accepted", "resolved", "cancelled", "expired")} == {
        "requested": 3, "accepted": 1, "resolved": 1, "cancelled": 1, "expired": 1}
    assert moved("handoff_handoff_time_to_accept_seconds_count", **returns) == 1
    assert moved("handoff_http_requests_total", method="POST",
                 route="/v1/handoffs/{id}/accept", status="409") == 2


async def test_requests_are_counted_by_route_template_never_by_raw_path(
        client: TestClient[Any, Any], keys: Keys) -> None:
    before = await scrape(client)
    for ref in ("account:88812345", "phone:%2B15550104477", "cus_01KAQ7V3M2X9RT5Y8ZB4C6D0EF"):
        r = await client.get(f"/v1/customers/{ref}/context", headers=keys("agent"))
        assert r.status == 404
    assert (await client.get("/no/such/route")).status == 404
    assert (await client.request("PROPFIND", "/healthz")).status == 405

    after = await scrape(client)
    moved = change(before, after)
    assert moved("handoff_http_requests_total", method="GET",
                 route="/v1/customers/{ref}/context", status="404") == 3
    assert moved("handoff_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert moved("handoff_http_requests_total", method="OTHER", route="unmatched",
                 status="405") == 1
    routes = {dict(labels).get("route") for (_, labels) in after} - {None}
    assert not [r for r in routes if "88812345" in r or "cus_" in r or "/no/" in r]


async def test_open_event_streams_show_in_a_gauge(client: TestClient[Any, Any],
                                                  keys: Keys) -> None:
    before = await scrape(client)
    streams = [await client.get("/v1/handoffs/events", headers=keys("agent")) for _ in range(2)]
    for stream in streams:
        assert stream.status == 200
        await stream.content.readuntil(b"\n\n")  # the stream is under way

    assert change(before, await scrape(client))("handoff_event_streams") == 2

    await client.close()  # the server says goodbye to its streams and stops
    moved = change(before, parse(metrics.exposition().decode()))
    assert moved("handoff_event_streams") == 0
    # A stream is counted when it ends, but its length is no latency.
    assert moved("handoff_http_requests_total", method="GET", route="/v1/handoffs/events",
                 status="200") == 2
    assert moved("handoff_http_request_duration_seconds_count", method="GET",
                 route="/v1/handoffs/events") == 0


async def test_reasks_and_webhook_deliveries_are_counted(client: TestClient[Any, Any]) -> None:
    before = await scrape(client)
    metrics.reask("acme", "account")
    metrics.reask("acme", "account")
    metrics.reask("acme", "order_number")
    outbox = client.app[DEPS].outbox
    for outcome in ("queued", "failed", "failed", "delivered", "dead"):
        outbox.count(outcome)

    moved = change(before, await scrape(client))
    assert moved("handoff_reasks_total", tenant="acme", fact="account") == 2
    assert moved("handoff_reasks_total", tenant="acme", fact="order_number") == 1
    assert [moved("handoff_webhook_deliveries_total", outcome=o)
            for o in ("queued", "failed", "delivered", "dead")] == [1, 2, 1, 1]
    assert outbox.outcomes()["failed"] == 2


async def test_with_a_metrics_token_only_the_scraper_holding_it_reads_metrics(
        make_client: AppFactory) -> None:
    guarded = await make_client(metrics_token=SecretStr("scrape-7f3a"))
    for sent in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2NyYXBl"}):
        refused = await guarded.get("/metrics", headers=sent)
        assert refused.status == 401
        assert refused.content_type == "application/problem+json"
        assert "handoff_" not in await refused.text()
    allowed = await guarded.get("/metrics", headers={"Authorization": "Bearer scrape-7f3a"})
    assert allowed.status == 200 and "handoff_http_requests_total" in await allowed.text()
    assert (await guarded.get("/healthz")).status == 200  # probes need no token


def test_caller_chosen_label_values_are_capped() -> None:
    budget = metrics.LabelBudget(size=2)
    assert budget("acme", "billing") == ("acme", "billing")
    assert budget("acme", "returns") == ("acme", "returns")
    assert budget("acme", "q-3") == ("acme", metrics.OTHER)
    assert budget("acme", "billing") == ("acme", "billing")  # known values keep their label


# --- several processes: `handoff serve --workers 2` ------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


@pytest.fixture
def two_workers(redis_server: RedisServer, redis_sync: redis.Redis, tmp_path: Path
                ) -> Iterator[Service]:
    if CLUSTER:
        pytest.skip("the multi-process metrics do not depend on the store's topology")
    service = Service(redis_server.url, free_port(), tmp_path / "serve.log",
                      extra_env={"HANDOFF_LOG_FORMAT": "json"}, args=("--workers", "2"))
    service.start()
    try:
        yield service
    finally:
        service.terminate()
        try:
            code = service.wait(30)
        finally:
            service.stop()
    assert code == 0, service.log()


async def _until(check: Callable[[], Any], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if await check():
                return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_two_workers_sum_their_counters_and_survive_a_worker_crash(
        two_workers: Service, keys: Keys) -> None:
    base, supervisor = two_workers.url, two_workers
    # A new connection per request, so the kernel spreads them over both workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async def samples() -> Samples:
            async with http.get(f"{base}/metrics") as r:
                assert r.status == 200
                return parse(await r.text())

        async def both_up() -> bool:
            return value(await samples(), "handoff_processes") == 2

        await _until(both_up, "two workers never both answered")
        for _ in range(40):
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
        for n in range(12):
            async with http.post(f"{base}/v1/handoffs", headers=keys("bot"), json={
                    "customer": {"identities": [{"kind": "chat", "value": f"visitor-{n}"}]},
                    "channel": "chat", "reason": "customer_request", "queue": "billing"}) as r:
                assert r.status == 201, await r.text()

        def totals(found: Samples) -> tuple[float, float, float]:
            return (value(found, "handoff_http_requests_total", method="GET",
                          route="/healthz", status="200"),
                    value(found, "handoff_handoffs_total", tenant="acme", queue="billing",
                          event="requested"),
                    value(found, "handoff_processes"))

        # Whichever worker answers the scrape, it reports both workers' counts.
        for _ in range(6):
            assert totals(await samples()) == (40, 12, 2)

        # A worker dies; what it counted still counts, and its stand-in joins the gauge.
        workers = _children(supervisor.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)

        async def replaced() -> bool:
            now = _children(supervisor.pid)
            return len(now) == 2 and workers[0] not in now and \
                value(await samples(), "handoff_processes") == 2

        await _until(replaced, "the supervisor never replaced the killed worker")
        for _ in range(4):
            assert totals(await samples()) == (40, 12, 2)


def test_tallied_latencies_land_in_the_buckets_prometheus_itself_would_choose() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    reference = Histogram("reference_seconds", "", ["route"], buckets=metrics.LATENCY_BUCKETS,
                          registry=registry)
    tallied = Histogram("tallied_seconds", "", ["route"], buckets=metrics.LATENCY_BUCKETS,
                        registry=registry)
    counted = Counter("tallied_requests", "", ["route"], registry=registry)
    tally = metrics.Tally(tallied, counted)
    # Exactly on a bound counts in that bucket (`le`), as Prometheus' own observe() decides.
    samples = [0.0, 0.0005, *metrics.LATENCY_BUCKETS, 0.0011, 0.3, 7.0, 99.0]
    for seconds in samples:
        reference.labels("/x").observe(seconds)
        tally.observe(("/x",), seconds)
        tally.count(("/x",))
    tally.flush()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in registry.collect() for s in family.samples}
    for (name, labels), v in found.items():
        if name.startswith("reference_seconds"):
            twin = name.replace("reference", "tallied")
            assert found[(twin, labels)] == pytest.approx(v), (name, labels)
    assert found[("tallied_requests_total", (("route", "/x"),))] == len(samples)
