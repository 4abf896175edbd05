"""The service dies between a customer write and the queuing of its webhook deliveries: the
deliveries were recorded with the write (the customer's outbox), so after a restart each one
arrives, once per delivery id, and a retried post adds none.

The crash is a fault only tests switch on (`HANDOFF_FAULT_CRASH_BEFORE_ENQUEUE`): the process
SIGKILLs itself right after the write script answered, before the delivery queue is touched.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest
import redis

from handoff.store import keys as redis_keys
from tests.conftest import CLUSTER, RedisServer, free_port
from tests.faults.service import Service, mint_key
from tests.test_webhooks import Receiver, receiver  # noqa: F401 - a fixture, found by name

pytestmark = pytest.mark.skipif(CLUSTER, reason="runs its own single Redis server")

LEASE = "1"
TS = "2026-11-23T10:02:00Z"


async def post_into_a_crash(doomed: Service, admin: dict[str, str], bot: dict[str, str],
                            hook_url: str, event: str, body: Mapping[str, object]) -> None:
    """Subscribe `hook_url` to `event`, then post `body` to a service set to die mid-write."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(f"{doomed.url}/v1/admin/webhooks", headers=admin, json={
                "url": hook_url, "events": [event]}) as r:
            assert r.status == 201, await r.text()
        with pytest.raises(aiohttp.ClientError):  # the process died mid-request
            await session.post(f"{doomed.url}/v1/conversations/web-1/turns", headers=bot,
                               json=body)
    assert await asyncio.to_thread(doomed.wait, 10) == -9


def service_env(**extra: str) -> dict[str, str]:
    return {"HANDOFF_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "HANDOFF_WEBHOOK_OUTBOX_LEASE_SECONDS": LEASE, "HANDOFF_WEBHOOK_POLL_SECONDS": "0.2",
            **extra}


async def test_a_crash_between_the_write_and_the_queue_loses_no_webhook_and_sends_none_twice(
        tmp_path: Path, receiver: Receiver) -> None:  # noqa: F811 - the imported fixture
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis", free_port())
    await asyncio.to_thread(store.start)
    doomed = Service(store.url, free_port(), tmp_path / "serve.log",
                     extra_env=service_env(HANDOFF_FAULT_CRASH_BEFORE_ENQUEUE="true"))
    revived = Service(store.url, doomed.port, tmp_path / "serve.log", extra_env=service_env())
    peek = redis.Redis(port=store.port)
    try:
        admin, bot = [{"Authorization": "Bearer " + await asyncio.to_thread(
            mint_key, store.url, role)} for role in ("admin", "bot")]
        body = {"customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
                "channel": "chat",
                "turns": [{"id": i, "role": "customer", "text": f"message {i}", "ts": TS}
                          for i in ("t1", "t2")]}
        await asyncio.to_thread(doomed.start)
        await post_into_a_crash(doomed, admin, bot, receiver.url, "turn.appended", body)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            # The write landed; its deliveries are in the customer's outbox, not in the queue.
            (outbox,) = list(peek.scan_iter(redis_keys.customer("acme", "*").outbox))
            assert peek.hlen(outbox) == 2
            assert peek.zcard(redis_keys.webhook_due("acme")) == 0

            await asyncio.to_thread(revived.start)
            arrived = await receiver.wait_for(2, seconds=15)
            async with session.post(f"{revived.url}/v1/conversations/web-1/turns", headers=bot,
                                    json=body) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["duplicates"] == 2  # the retry appends nothing
            # Long enough for any second copy: past another lease, sweep and poll.
            await asyncio.sleep(3 * float(LEASE) + 1)
    finally:
        peek.close()
        revived.stop()
        doomed.stop()
        store.stop()

    arrived = receiver.got
    per_delivery = Counter(r.headers["Handoff-Delivery-Id"] for r in arrived)
    assert len(per_delivery) == 2 and set(per_delivery.values()) == {1}, per_delivery
    turns = sorted(json.loads(r.body)["data"]["record"]["id"] for r in arrived)
    assert turns == ["t1", "t2"]
    assert {r.headers["Handoff-Event-Type"] for r in arrived} == {"turn.appended"}
