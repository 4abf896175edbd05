"""A real `handoff serve` subprocess on loopback, its keys, and a plain SSE reader."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

HOST = "127.0.0.1"


def _env(redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # The test run's own settings (and a multiprocess metrics folder) are not the service's.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HANDOFF_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    if redis_url:  # none: the service finds Redis some other way (HANDOFF_REDIS_SENTINELS)
        env["HANDOFF_REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


async def transcript_ids(session: aiohttp.ClientSession, url: str, customer: str,
                         agent: dict[str, str]) -> list[str]:
    """Every turn id of a customer's whole transcript, oldest first, page by page."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500, **({"before": cursor} if cursor else {})}
        async with session.get(f"{url}/v1/customers/{customer}/turns", params=params,
                               headers=agent) as r:
            if r.status != 200:
                raise AssertionError(f"transcript read answered {r.status}: {await r.text()}")
            page = await r.json()
        ids += [t["id"] for t in page["items"]]
        if not page["next"]:
            return ids[::-1]
        cursor = page["next"]


@asynccontextmanager
async def service_on_its_own_redis(tmp_path: Path
                                   ) -> AsyncIterator[tuple[Service, Any, dict[str, str],
                                                            dict[str, str]]]:
    """A fresh Redis and `handoff serve` on it, with bot and agent headers; both stopped
    afterwards whatever happened."""
    from tests.conftest import RedisServer, free_port

    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis", free_port())
    service = Service("", free_port(), tmp_path / "serve.log")
    try:
        await asyncio.to_thread(store.start)
        service.redis_url = store.url
        await asyncio.to_thread(service.start)
        bot_key, agent_key = await asyncio.gather(
            asyncio.to_thread(mint_key, store.url, "bot"),
            asyncio.to_thread(mint_key, store.url, "agent"))
        yield (service, store, {"Authorization": f"Bearer {bot_key}"},
               {"Authorization": f"Bearer {agent_key}"})
    finally:
        service.stop()
        store.stop()


def mint_key(redis_url: str, role: str, tenant: str = "acme") -> str:
    """A new API key, minted by the CLI in the same store the service uses."""
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "keys", "create", "--tenant", tenant,
         "--role", role], capture_output=True, text=True, timeout=60, env=_env(redis_url),
        check=True)
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Service:
    """`handoff serve` with HANDOFF_REDIS_URL; its output goes to a log file."""

    redis_url: str
    port: int
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # more `handoff serve` options, such as --workers 2
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handoff", "serve", "--host", HOST,
             "--port", str(self.port), *self.args], stdout=self._log, stderr=subprocess.STDOUT,
            env=_env(self.redis_url, self.extra_env))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"handoff serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self._close_log()

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        self._close_log()
        return code

    def stop(self) -> None:
        """Whatever state it is in, it is gone afterwards."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def rss_kb(self) -> int:
        """VmRSS of the service process, in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


@dataclass
class SseReader:
    """One event stream, read to its end (or until cancelled); `opened` is set once the server
    has answered, i.e. the subscription is live."""

    session: aiohttp.ClientSession
    url: str
    headers: dict[str, str]
    events: list[SseEvent] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    opened_at: float = 0.0
    status: int = 0
    until: Callable[[SseReader], bool] | None = None  # stop reading once this holds

    def turn_ids(self) -> list[str]:
        return [e.data["record"]["id"] for e in self.events if e.event == "turn.appended"]

    def ending(self) -> SseEvent | None:
        last = self.events[-1] if self.events else None
        return last if last and last.event.startswith("server.") else None

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.url, headers=self.headers, timeout=timeout) as r:
            self.status = r.status
            if r.status != 200:
                self.opened.set()
                return
            fields: dict[str, str] = {}
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("retry:") and not self.opened.is_set():
                    self.opened_at = time.monotonic()
                    self.opened.set()
                if line == "":
                    if "data" in fields:
                        self.events.append(SseEvent(fields.get("id"),
                                                    fields.get("event", "message"),
                                                    json.loads(fields["data"])))
                        if self.until is not None and self.until(self):
                            return
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
