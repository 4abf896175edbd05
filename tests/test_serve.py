"""`handoff serve` on its embedded default: starts a real Redis, stops it, keeps the data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from handoff.runtime.embedded import EmbeddedRedis
from tests.conftest import free_port


def _cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "handoff", *args], capture_output=True,
                          text=True, timeout=60, env=_env(), **kw)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff", "serve", "--data-dir", str(data_dir),
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"handoff serve did not become ready: {proc.communicate()[0]}")


def _call(port: int, method: str, path: str, key: str, body: dict[str, Any] | None = None
          ) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    return proc.returncode


def test_serve_keeps_acknowledged_turns_across_a_restart_and_exits_cleanly(
        tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    server = _start(data, port)
    try:
        # Keys are minted against the running server's own store, through its socket.
        bot = _cli("keys", "create", "--tenant", "acme", "--role", "bot",
                   "--data-dir", str(data)).stdout.strip().splitlines()[-1]
        agent = _cli("keys", "create", "--tenant", "acme", "--role", "agent",
                     "--data-dir", str(data)).stdout.strip().splitlines()[-1]
        status, body = _call(port, "POST", "/v1/conversations/web-1/turns", bot, {
            "customer": {"identities": [{"kind": "chat", "value": "visitor-9"}]},
            "channel": "chat",
            "turns": [{"id": "t1", "role": "customer", "text": "Where is my parcel?",
                       "ts": "2026-11-23T10:02:00Z"}]})
        assert status == 200 and body["appended"] == 1
    finally:
        assert _stop(server) == 0
    # The embedded server went with it.
    assert not _socket_answers(EmbeddedRedis(data).socket_path)

    server = _start(data, port)
    try:
        status, brief = _call(port, "GET", "/v1/customers/chat:visitor-9/context", agent)
        assert status == 200
        assert [t["text"] for t in brief["turns"]] == ["Where is my parcel?"]
    finally:
        assert _stop(server) == 0


def _socket_answers(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def test_keys_create_prints_the_key_last_and_rejects_a_bad_role(tmp_path: Path) -> None:
    made = _cli("keys", "create", "--tenant", "acme", "--role", "ivr",
                "--data-dir", str(tmp_path / "d"))
    assert made.returncode == 0
    assert made.stdout.strip().splitlines()[-1].startswith("hk_")
    bad = _cli("keys", "create", "--tenant", "acme", "--role", "root",
               "--data-dir", str(tmp_path / "d"))
    assert bad.returncode != 0


def test_a_data_folder_too_deep_for_a_unix_socket_still_serves(tmp_path: Path) -> None:
    """sun_path is ~104 bytes: a deep folder's socket moves to the temp folder, found by every
    process from the folder alone, and goes with the server."""
    deep = tmp_path / ("nested-" * 8) / ("deeper-" * 8) / "handoff-data"
    embedded = EmbeddedRedis(deep)
    assert len(str(deep / "redis.sock")) > 100 and embedded.socket_path.parent != deep
    with embedded:
        assert _socket_answers(EmbeddedRedis(deep).socket_path)
        assert (deep / "appendonlydir").is_dir()
    assert not _socket_answers(embedded.socket_path)
