"""docs/client.md's examples run: the bot asks for a hand-off, the desk takes it, greets the
customer, hears back and resolves it, against a live server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from handoff.client import HandoffClient
from tests.conftest import Keys

DOCS = Path(__file__).parent.parent / "docs"


def test_the_guide_shows_exactly_the_example_files() -> None:
    guide = (DOCS / "client.md").read_text()
    for name in ("bot.py", "desk.py"):
        assert f"```python\n{(DOCS / 'examples' / name).read_text()}```" in guide, name


async def run_example(name: str, **environment: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(DOCS / "examples" / name), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")},
             **environment})


async def test_the_bot_and_desk_examples_play_a_handoff_end_to_end(
        client: TestClient[Any, Any], keys: Keys) -> None:
    url = str(client.make_url("")).rstrip("/")
    bot = await run_example("bot.py", HANDOFF_URL=url,
                            HANDOFF_BOT_KEY=keys.secrets[("acme", "bot")])
    out, err = await asyncio.wait_for(bot.communicate(), 60)
    assert bot.returncode == 0, err.decode()
    assert out.decode().startswith("hand-off ho_") and "pending, code " in out.decode()

    desk = await run_example("desk.py", HANDOFF_URL=url,
                             HANDOFF_AGENT_KEY=keys.secrets[("acme", "agent")])
    assert desk.stdout is not None
    lines = []
    try:
        while "waiting for the customer" not in (lines or [""])[-1]:
            lines.append((await asyncio.wait_for(desk.stdout.readline(), 30)).decode())
        async with HandoffClient(url, keys.secrets[("acme", "bot")]) as customer_side:
            await customer_side.append_turns("web-7f3a", {"turns": [{
                "id": "t5", "role": "customer", "text": "Thank you!",
                "ts": "2026-11-23T10:20:00Z"}]})
        rest, err = await asyncio.wait_for(desk.communicate(), 30)
    finally:
        if desk.returncode is None:
            desk.kill()
            await desk.wait()
    assert desk.returncode == 0, err.decode()
    printed = "".join(lines) + rest.decode()
    assert "Charged twice for order A-1001" in printed
    assert "order_number = A-1001" in printed
    assert "customer: Thank you!" in printed
    assert printed.rstrip().endswith("resolved")
