"""No API key and no panel token reaches a log line, wherever a request carries one: the
Authorization header (Bearer or Basic), `?access_token=`, a header aiohttp's parser refuses and
quotes back in its own error line, a request id, a broken body.

A real `handoff serve` at DEBUG level, spoken to over raw sockets so that malformed requests
reach it byte for byte; the test then searches its whole stderr for the secrets themselves.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.conftest import CLUSTER, Keys, RedisServer, free_port


def _exchange(port: int, request: str, *, stream: bool = False) -> str:
    """Send `request` as it is; the status line answered (an event stream is left after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if stream and b"\r\n\r\n" in answer:
                break
    return answer.split(b"\r\n", 1)[0].decode()


def _get(path: str, *headers: str) -> str:
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: handoff\r\nConnection: close\r\n{lines}\r\n"


def _serve(redis_url: str, log_format: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env |= {"HANDOFF_REDIS_URL": redis_url, "HANDOFF_LOG_FORMAT": log_format,
            "HANDOFF_LOG_LEVEL": "DEBUG"}
    with log.open("wb") as err:
        server = subprocess.Popen([sys.executable, "-m", "handoff", "serve", "--port",
                                   str(port)], stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return server, port
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                server.kill()
                raise AssertionError(log.read_text()) from None
            time.sleep(0.1)


def _mint_panel_token(port: int, agent_key: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/desk/tokens", method="POST",
        data=json.dumps({"agent_id": "agent-7"}).encode(),
        headers={"Authorization": f"Bearer {agent_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        token: str = json.loads(r.read())["token"]
    return token


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_key_or_panel_token_reaches_the_log_wherever_a_request_carries_it(
        log_format: str, keys: Keys, redis_server: RedisServer, redis_sync: redis.Redis,
        tmp_path: Path) -> None:
    if CLUSTER:
        pytest.skip("logging does not depend on the store's topology")
    log = tmp_path / "stderr.log"
    server, port = _serve(redis_server.url, log_format, log)
    try:
        key = keys.secrets[("acme", "agent")]
        token = _mint_panel_token(port, key)
        basic = base64.b64encode(f"handoff:{key}".encode()).decode()
        events = f"/v1/handoffs/events?access_token={token}"

        # Well-formed requests: each answered as usual.
        assert _exchange(port, _get("/v1/handoffs", f"Authorization: Bearer {key}")
                         ).endswith("200 OK")
        assert _exchange(port, _get("/v1/handoffs", f"Authorization: Basic {basic}")
                         ).endswith("200 OK")
        assert _exchange(port, _get("/v1/handoffs", f"Authorization: Bearer {token}")
                         ).endswith("200 OK")
        assert _exchange(port, _get(events), stream=True).endswith("200 OK")
        assert _exchange(port, _get(f"/v1/handoffs/events?access_token={key}")
                         ).endswith("401 Unauthorized")
        for secret in (key, token):  # a request id that is a secret is replaced, not logged
            assert _exchange(port, _get("/healthz", f"X-Request-ID: {secret}")
                             ).endswith("200 OK")

        # Malformed ones, which aiohttp refuses and logs with the offending bytes quoted.
        malformed = [
            _get("/v1/handoffs", f"Authorization: Bearer {key}\rX"),
            _get("/v1/handoffs", f"Authorization: Basic {basic}\rX"),
            _get("/v1/handoffs", f"X-Panel: {token}\rX"),
            _get(events, f"Authorization: Bearer {token}\x00"),
            f"GET {events} HTTP/1.1\rX\r\nHost: handoff\r\n\r\n",
            f"GET {events}\x7f HTTP/1.1\r\nHost: handoff\r\n\r\n",
            f"POST /v1/handoffs HTTP/1.1\r\nHost: handoff\r\nAuthorization: Bearer {key}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\nzz{key}\r\n",
        ]
        for request in malformed:
            assert " 400 " in _exchange(port, request), request
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    written = log.read_text()
    for secret in (key, token, basic):
        for piece in (secret, secret[3:], secret[:20], secret[-16:]):
            assert piece not in written, f"{piece!r} is in the log:\n{written}"
    assert "aiohttp.server" in written and "handoff.access" in written
    assert written.count("[REDACTED]") >= len(malformed), "aiohttp quoted each request"
