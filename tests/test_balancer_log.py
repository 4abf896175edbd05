"""The shipped nginx config, run by a real nginx in front of a stand-in upstream: what its access
log says of a request. A path can carry what handoff itself never logs (an identity, a bot's
conversation id that reads as a card number, a continuation code, a panel token in the query),
so the balancer's log must not carry it either."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import free_port

ROOT = Path(__file__).parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(),
                                reason="nginx is not installed (.ci/run installs it)")

# Each path, and what the log must show of it.
PATHS = {
    "/v1/customers/account:88812345/context": "/v1/customers/{ref}/context",
    "/v1/customers/phone:+14155550123": "/v1/customers/{ref}",
    "/v1/conversations/4111111111111111/turns": "/v1/conversations/{conversation_id}/turns",
    "/v1/conversations/4111.1111.1111.1111/turns": "/v1/conversations/{conversation_id}/turns",
    "/v1/continuations/482913/redeem": "/v1/continuations/{code}/redeem",
    "/v1/customers/account:88812345/4111111111111111": "/v1/customers/(not-logged)",
    "/v1/handoffs/ho_01JD7Q9ZK3W4X5Y6Z7A8B9C0DE/accept":
        "/v1/handoffs/ho_01JD7Q9ZK3W4X5Y6Z7A8B9C0DE/accept",
    "/ref-4111111111111111": "(not-logged)",
    "/card/4111-1111-1111-1111": "(not-logged)",
    "/card/4111 1111 1111 1111": "(not-logged)",
    "/card/٤١١١١١١١١١١١١١١١": "(not-logged)",
    "/v1/customers/cus_01JD7Q9ZK3W4X5Y6Z7A8B9C0DE/events": "/v1/customers/{ref}/events",
}
SECRETS = ("88812345", "4111", "482913", "+14155550123", "dt_", "٤١١١")


def configured(upstream: int, port: int, folder: Path) -> Path:
    """deploy/nginx.conf as shipped, but listening and logging here, before one upstream."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    text = re.sub(r"server handoff-\d:8080[^;]*;", f"server 127.0.0.1:{upstream};", text)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("/var/log/nginx/access.log", str(folder / "access.log"))
    text = text.replace("/var/log/nginx/error.log", str(folder / "error.log"))
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {", "http {\n" + temp, 1)
    config = folder / "nginx.conf"
    config.write_text(f"pid {folder / 'nginx.pid'};\n" + text)
    return config


def start_nginx(upstream: int, folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on the shipped config, once it accepts connections: (process, port)."""
    folder.chmod(0o777)  # nginx's workers may run as another user
    port = free_port()
    nginx = subprocess.Popen([NGINX, "-c", str(configured(upstream, port, folder)), "-p",
                              str(folder), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return nginx, port
        except OSError:
            if nginx.poll() is not None or time.monotonic() > deadline:
                nginx.kill()
                raise AssertionError((folder / "error.log").read_text()) from None
            time.sleep(0.05)


@pytest.fixture
async def balancer(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    async def anything(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    upstream = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream).start()
    nginx, port = await asyncio.to_thread(start_nginx, upstream, tmp_path)
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "access.log"
    finally:
        nginx.terminate()
        await asyncio.to_thread(nginx.wait, 10)
        await runner.cleanup()


async def test_the_balancer_logs_templates_never_an_identity_a_card_number_or_a_token(
        balancer: tuple[str, Path]) -> None:
    base, log = balancer
    async with aiohttp.ClientSession() as http:
        for path in PATHS:
            url = base + quote(path, safe="/:+") + "?access_token=dt_e30.c2lnbmF0dXJl"
            async with http.get(url) as answer:
                assert answer.status == 200, path
    deadline = time.monotonic() + 5
    while len(lines := log.read_text().splitlines()) < len(PATHS):
        assert time.monotonic() < deadline, lines
        await asyncio.sleep(0.05)
    logged = [re.search(r'"GET (\S+) HTTP/1\.1"', line) for line in lines]
    assert [m.group(1) if m else None for m in logged] == list(PATHS.values())
    written = log.read_text()
    assert not [s for s in SECRETS if s in written], written
