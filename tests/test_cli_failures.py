"""The commands fail kindly, as real processes: a busy port is one line and exit status 1, a
reader that stops reading ends the command quietly, and minting a key in a store no server uses
says so before the server answers 401."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handoff.programs.demo import scenario
from handoff.runtime.embedded import EmbeddedRedis
from tests.conftest import Keys, RedisServer, free_port
from tests.test_serve import _socket_answers, _stop

Client = TestClient[Any, Any]


def clean_env(**values: str) -> dict[str, str]:
    """The environment without any HANDOFF_ setting of the test run's own."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}, **values}


def handoff(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "handoff", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=clean_env(**env))


def whoami(port: int, key: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/whoami",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


@contextmanager
def serving_from(home: Path) -> Iterator[int]:
    """`handoff serve` started in `home` as the quick start runs it (its data in
    ./handoff-data there), on a free port; answers the port once it is ready, and stops it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "handoff", "serve", "--port", str(port)],
                              cwd=home, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "handoff serve did not become ready"
                time.sleep(0.1)
        yield port
    finally:
        if server.poll() is None:
            assert _stop(server) == 0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A server started from its own directory; answers that directory and its port."""
    home = tmp_path / "server"
    home.mkdir()
    with serving_from(home) as port:
        yield home, port


# -- a busy port ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_serve_on_a_busy_port_says_so_in_one_line_and_exits_1(
        served: tuple[Path, int], tmp_path: Path, workers: str) -> None:
    _, port = served
    second = handoff("serve", "--port", str(port), "--workers", workers,
                     "--data-dir", str(tmp_path / "second"))
    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"handoff: port {port} on 127.0.0.1 is already in use (another handoff serve?); "
        f"choose another with --port {port + 1} or HANDOFF_PORT={port + 1}"]
    assert second.stdout == ""
    # Nothing was started for a server that could not listen.
    assert not _socket_answers(EmbeddedRedis(tmp_path / "second").socket_path)


def test_a_host_that_is_not_this_machines_is_named_in_one_line(tmp_path: Path) -> None:
    refused = handoff("serve", "--host", "192.0.2.1", "--port", str(free_port()),
                      "--data-dir", str(tmp_path / "d"))
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "handoff: 192.0.2.1 is not an address of this machine; choose another with --host or "
        "HANDOFF_HOST"]


# -- a reader that stops reading --------------------------------------------------------------


@pytest.mark.parametrize("command", [["context", "account:88812345"],
                                     ["tail", "account:88812345", "--since", "0-0"]],
                         ids=["context", "tail"])
async def test_output_into_a_pipe_nobody_reads_ends_quietly_as_unix_tools_do(
        command: list[str], client: Client, keys: Keys) -> None:
    await scenario(str(client.make_url("")), {r: keys.secrets[("acme", r)]
                                              for r in ("bot", "ivr", "agent")})
    # `handoff context ... | head -1`, with head already gone: every write meets a closed pipe.
    reader, writer = os.pipe()
    os.close(reader)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "handoff", *command, stdout=writer,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(HANDOFF_URL=str(client.make_url("")),
                      HANDOFF_KEY=keys.secrets[("acme", "agent")]))
    os.close(writer)
    try:
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert err == b""
    assert process.returncode == 141, "128 + SIGPIPE, what a shell reports for `yes | head`"


# -- a key minted in a store no server uses --------------------------------------------------


def test_a_key_minted_from_another_directory_warns_that_the_server_will_not_know_it(
        served: tuple[Path, int], tmp_path: Path) -> None:
    home, port = served
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    lost = handoff("keys", "create", "--tenant", "acme", "--role", "agent", cwd=elsewhere)
    assert lost.returncode == 0
    assert lost.stderr.splitlines() == [
        f"handoff: warning: there was no store in {elsewhere / 'handoff-data'}: made a new, "
        "empty one, and no handoff serve runs on it. A server started in another directory "
        "answers 401 to a key minted here: run this from the directory handoff serve runs in, "
        "or give its --data-dir (or HANDOFF_REDIS_URL)."]
    assert whoami(port, lost.stdout.splitlines()[-1]) == 401

    kept = handoff("keys", "create", "--tenant", "acme", "--role", "agent", cwd=home)
    assert kept.stderr.splitlines() == [
        f"handoff: using the embedded store in {home / 'handoff-data'}, shared with the "
        "handoff serve running on it"]
    assert whoami(port, kept.stdout.splitlines()[-1]) == 200

    pointed = handoff("keys", "create", "--tenant", "acme", "--role", "bot", "--data-dir",
                      str(home / "handoff-data"), cwd=elsewhere)
    assert "shared with the handoff serve running on it" in pointed.stderr
    assert whoami(port, pointed.stdout.splitlines()[-1]) == 200

    # The store made by mistake is still there, and said to be idle rather than new.
    again = handoff("keys", "list", "--tenant", "acme", cwd=elsewhere)
    assert again.stderr.splitlines() == [
        f"handoff: using the embedded store in {elsewhere / 'handoff-data'}; no handoff serve "
        f"is running on it now (one started with --data-dir {elsewhere / 'handoff-data'} will "
        "use it)"]
    assert len(again.stdout.splitlines()) == 1


def test_keys_name_the_redis_they_used_without_its_password(redis_server: RedisServer) -> None:
    url = redis_server.url
    made = handoff("keys", "create", "--tenant", "acme", "--role", "bot",
                   HANDOFF_REDIS_URL=url)
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines() == [f"handoff: using the store at {url} (HANDOFF_REDIS_URL)"]
    assert made.stdout.splitlines()[-1].startswith("hk_")


def test_a_password_in_the_store_url_is_not_printed() -> None:
    from handoff.programs.localstore import shown

    assert shown("redis://app:s3cret@redis.internal:6379/0") == (
        "redis://app:***@redis.internal:6379/0")
    assert shown("rediss://:s3cret@redis.internal/0") == "rediss://:***@redis.internal/0"
    assert shown("unix:///srv/handoff/redis.sock") == "unix:///srv/handoff/redis.sock"


def test_the_demo_against_a_server_says_which_store_it_minted_its_keys_in(
        served: tuple[Path, int]) -> None:
    home, port = served
    played = handoff("demo", "--url", f"http://127.0.0.1:{port}", cwd=home)
    assert played.returncode == 0, played.stderr
    assert "shared with the handoff serve running on it" in played.stderr
    assert "VERIFIED by pin" in played.stdout
