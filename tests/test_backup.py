"""The backup drill of docs/operations.md: copy the embedded store's append-only files while
`handoff serve` takes writes, start a new server on the copy, and find every turn that was
acknowledged before the copy began."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from handoff.runtime.embedded import EmbeddedRedis
from tests.conftest import CLUSTER, free_port
from tests.faults.service import Service, mint_key, transcript_ids

pytestmark = pytest.mark.skipif(CLUSTER, reason="backs up the embedded single server")

WRITERS = 4
TS = "2026-11-23T10:02:00Z"


def copy_while_running(data_dir: Path, backup_dir: Path) -> float:
    """The documented procedure, step by step; answers when the copy began (monotonic)."""
    server = redis.Redis(unix_socket_path=str(EmbeddedRedis(data_dir).socket_path))
    try:
        # 1. No rewrite may start during the copy (it would replace the files under it).
        before = server.config_get("auto-aof-rewrite-percentage")["auto-aof-rewrite-percentage"]
        server.config_set("auto-aof-rewrite-percentage", 0)
        # 2. ...and none may be running.
        while server.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        # 3. Copy the folder of append-only files.
        began = time.monotonic()
        shutil.copytree(data_dir / "appendonlydir", backup_dir / "appendonlydir")
        # 4. Rewrites as before.
        server.config_set("auto-aof-rewrite-percentage", before)
        return began
    finally:
        server.close()


async def writer(session: aiohttp.ClientSession, url: str, bot: dict[str, str], w: int,
                 acked: list[tuple[float, str]], stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        turn_id = f"w{w}-{n}"
        body: dict[str, Any] = {
            "customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
            "channel": "chat",
            "turns": [{"id": turn_id, "role": "customer", "text": f"message {n}", "ts": TS}]}
        async with session.post(f"{url}/v1/conversations/web-1/turns", headers=bot,
                                json=body) as r:
            assert r.status == 200, await r.text()
        acked.append((time.monotonic(), turn_id))


async def test_a_copy_taken_while_serving_restores_every_turn_acknowledged_before_it(
        tmp_path: Path) -> None:
    live, backup = tmp_path / "live", tmp_path / "backup"
    serving = Service("", free_port(), tmp_path / "live.log", args=("--data-dir", str(live)))
    restored = Service("", free_port(), tmp_path / "restored.log",
                       args=("--data-dir", str(backup)))
    try:
        await asyncio.to_thread(serving.start)
        socket_url = EmbeddedRedis(live).url
        bot, agent = [{"Authorization": "Bearer " + await asyncio.to_thread(
            mint_key, socket_url, role)} for role in ("bot", "agent")]
        acked: list[tuple[float, str]] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            stop = asyncio.Event()
            load = [asyncio.create_task(writer(session, serving.url, bot, w, acked, stop))
                    for w in range(WRITERS)]
            await asyncio.sleep(1.0)
            began = await asyncio.to_thread(copy_while_running, live, backup)
            await asyncio.sleep(0.5)  # writes go on after the copy
            stop.set()
            await asyncio.gather(*load)
            async with session.post(f"{serving.url}/v1/conversations/web-1/turns", headers=bot,
                                    json={"turns": [{"id": "first", "role": "customer",
                                                     "text": "hi", "ts": TS}]}) as r:
                customer = (await r.json())["customer_id"]
        serving.stop()

        await asyncio.to_thread(restored.start)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            found = set(await transcript_ids(session, restored.url, customer, agent))
    finally:
        restored.stop()
        serving.stop()

    before = {turn_id for at, turn_id in acked if at < began}
    assert len(before) > 50, f"too little load to mean anything: {len(before)} turns"
    missing = before - found
    assert not missing, f"{len(missing)} of {len(before)} acknowledged turns missing"
    assert found <= {turn_id for _, turn_id in acked}  # nothing the clients did not send
