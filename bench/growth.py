"""Does cost stay flat as history grows? Append and brief at several history lengths, Redis
memory per stored turn, and (full runs) a store holding many customers."""

from __future__ import annotations

import time
from typing import Any

import redis

from bench import wrk_runner
from bench.cpu import CpuMeter, wait_quiet
from bench.results import Figure, GrowthPoint, ManyCustomers, MemoryPoint
from bench.scenarios import Bench, append_env, measure
from bench.seed import TENANT, Api, text_bytes
from handoff.store import keys

# Every point returns the same 10 turns, so the figures differ only by what is stored behind
# them; with the default 50, the 10-turn customer would also win by sending a smaller body.
GROWTH_BRIEF_TURNS = 10


def growth_name(turns: int) -> str:
    return f"growth-{turns}"


async def seed_growth(api: Api, points: tuple[int, ...]) -> dict[int, str]:
    """One customer per point (one at a time: the service is single-core either way)."""
    return {n: await api.history(growth_name(n), n) for n in points}


def _memory_usage(client: redis.Redis, key: str) -> int:
    # SAMPLES 0 walks every element: exact, which is what a per-turn figure needs.
    used: Any = client.memory_usage(key, samples=0)
    return int(used or 0)


def memory(redis_url: str, cus_id: str, turns: int) -> MemoryPoint:
    client = redis.Redis.from_url(redis_url)
    try:
        k = keys.customer(TENANT, cus_id)
        stored = int(client.xlen(k.turns))
        if stored != turns:
            raise RuntimeError(f"{cus_id} holds {stored} turns, expected {turns}")
        core = _memory_usage(client, k.turns) + _memory_usage(client, k.tids)
        everything = sum(_memory_usage(client, name) for name in k.all())
        return MemoryPoint(turns=turns, text_bytes=text_bytes(0, turns) / turns,
                           turns_and_tids=core / turns, all_keys=everything / turns)
    finally:
        client.close()


def point(bench: Bench, turns: int, cus_id: str) -> GrowthPoint:
    """Brief first (it writes nothing), then append, which grows the history as it runs."""
    plan = bench.plan
    wait_quiet(bench.plan.quiet_wait)
    meter = CpuMeter.start()
    brief = wrk_runner.warm_then_run(
        f"brief at {turns} turns",
        f"{bench.service.base}/v1/customers/{cus_id}/context?turns={GROWTH_BRIEF_TURNS}",
        "get.lua", warmup=plan.growth_warmup, seconds=plan.growth_seconds, connections=64,
        env={"BENCH_KEY": bench.keys.agent})
    append = wrk_runner.warm_then_run(
        f"append at {turns} turns", bench.service.base, "append.lua",
        warmup=plan.growth_warmup, seconds=plan.growth_seconds, connections=64,
        env=append_env(bench, growth_name(turns), f"growth-{turns}"))
    bench.problems += brief.problems + append.problems
    return GrowthPoint(turns=turns, brief_rps=brief.rps, append_rps=append.rps,
                       brief_p99_ms=brief.p99, append_p99_ms=append.p99,
                       other_load=meter.foreign_cores())


def used_memory(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        info: Any = client.info("memory")
        return int(info["used_memory"])
    finally:
        client.close()


async def seed_many(bench: Bench, api: Api) -> tuple[list[str], float, float]:
    """(customer ids, seconds taken, used_memory per customer) for the many-customers figure."""
    plan = bench.plan
    before = used_memory(bench.redis_url)
    started = time.monotonic()
    ids = await api.many("many", plan.many_customers, plan.many_turns, plan.seed_concurrency)
    seconds = time.monotonic() - started
    per_customer = (used_memory(bench.redis_url) - before) / plan.many_customers
    return ids, seconds, per_customer


def breakdown(redis_url: str, cus_id: str) -> dict[str, int]:
    """MEMORY USAGE of each of one customer's keys, by key name (meta, turns, events, ...)."""
    client = redis.Redis.from_url(redis_url)
    try:
        k = keys.customer(TENANT, cus_id)
        sizes = {name.rsplit(":", 1)[1]: _memory_usage(client, name) for name in k.all()}
        return {name: size for name, size in sizes.items() if size}
    finally:
        client.close()


def many(bench: Bench, ids: list[str], seconds: float, per_customer: float) -> ManyCustomers:
    path = bench.workdir / "customers.txt"
    path.write_text("\n".join(ids) + "\n")
    figure: Figure = measure(
        bench, "random_brief",
        f"brief GET, random one of {len(ids):,} customers x {bench.plan.many_turns} turns",
        bench.service.base, "random_brief.lua",
        env={"BENCH_KEY": bench.keys.agent, "BENCH_IDS": str(path)})
    return ManyCustomers(customers=len(ids), turns_each=bench.plan.many_turns,
                         used_memory_per_customer=per_customer, seed_seconds=seconds,
                         brief=figure, breakdown=breakdown(bench.redis_url, ids[len(ids) // 2]))
