"""Request logs: one JSON line per request, tied to its `X-Request-ID`, with nothing sensitive."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from handoff.kernel import logs
from tests.conftest import CLUSTER, Keys, RedisServer, free_port

PAN = "4111 1111 1111 1111"
ACCOUNT = "88812345"
TS = "2026-11-23T10:02:00Z"


def _request(base: str, method: str, path: str, key: str | None = None,
             body: dict[str, Any] | None = None, request_id: str | None = None
             ) -> tuple[int, dict[str, Any], str]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    request = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}"), r.headers["X-Request-ID"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers["X-Request-ID"]


@pytest.fixture
def served(redis_server: RedisServer, redis_sync: redis.Redis, tmp_path: Path
           ) -> Iterator[tuple[str, Path]]:
    """A real `handoff serve` writing JSON logs, with account numbers marked sensitive."""
    if CLUSTER:
        pytest.skip("logging does not depend on the store's topology")
    port, log = free_port(), tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env |= {"HANDOFF_REDIS_URL": redis_server.url, "HANDOFF_LOG_FORMAT": "json",
            "HANDOFF_SENSITIVE_KINDS": json.dumps({"acme": ["account"]})}
    with log.open("wb") as err:
        server = subprocess.Popen([sys.executable, "-m", "handoff", "serve", "--port",
                                   str(port)], stdout=subprocess.DEVNULL, stderr=err, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _request(base, "GET", "/readyz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield base, log
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def test_every_request_is_one_json_line_without_card_or_sensitive_account_numbers(
        served: tuple[str, Path], keys: Keys) -> None:
    base, log = served
    bot, ivr, agent = (keys.secrets[("acme", r)] for r in ("bot", "ivr", "agent"))
    caller = {"identities": [{"kind": "phone", "value": "+15550104477"},
                             {"kind": "account", "value": ACCOUNT}]}

    status, wrote, rid = _request(base, "POST", "/v1/conversations/CA9f2/turns", ivr, {
        "customer": caller, "channel": "voice", "source": "acme-ivr",
        "turns": [{"id": "c1", "role": "customer", "ts": TS,
                   "text": f"My card is {PAN}, account {ACCOUNT}"}]}, request_id="call-CA9f2-1")
    assert (status, rid) == (200, "call-CA9f2-1")
    customer = wrote["customer_id"]
    assert _request(base, "POST", "/v1/verifications", ivr, {
        "customer": {"identities": [{"kind": "phone", "value": "+15550104477"}]},
        "identity": {"kind": "account", "value": ACCOUNT}, "method": "pin", "level": "high",
        "channel": "voice", "conversation_id": "CA9f2"})[0] == 200
    status, brief, read_id = _request(base, "GET", f"/v1/customers/account:{ACCOUNT}/context",
                                      agent)
    assert status == 200 and brief["customer"]["id"] == customer
    # Refused bodies and ids are not echoed into the log either.
    status, problem, bad_id = _request(base, "POST", "/v1/conversations/web-1/turns", bot, {
        "channel": "chat", "card": PAN, "turns": [{"id": "t1", "role": "customer",
                                                   "text": PAN, "ts": "yesterday"}]},
        request_id=PAN.replace(" ", ""))
    assert status == 422 and problem["request_id"] == bad_id != PAN.replace(" ", "")
    assert _request(base, "GET", f"/v1/customers/account:{ACCOUNT}99/context", agent)[0] == 404

    served_log = _written(log)
    assert PAN not in served_log and PAN.replace(" ", "") not in served_log
    assert ACCOUNT not in served_log
    lines = [json.loads(line) for line in served_log.splitlines() if line.strip()]
    access = {line["request_id"]: line for line in lines if line["logger"] == "handoff.access"}
    written = access["call-CA9f2-1"]
    assert written["route"] == "/v1/conversations/{conversation_id}/turns"
    assert (written["method"], written["status"], written["tenant"]) == ("POST", 200, "acme")
    assert written["customer_id"] == customer and written["key_id"].startswith("key_")
    assert written["remote"] == "127.0.0.1" and written["latency_ms"] >= 0
    read = access[read_id]
    assert (read["route"], read["status"], read["customer_id"]) == (
        "/v1/customers/{ref}/context", 200, customer)
    assert access[bad_id]["status"] == 422
    assert {"ts", "level", "message"} <= set(read)


def _written(log: Path) -> str:
    """The log so far, up to its last whole line (a line is written before its answer)."""
    deadline = time.monotonic() + 5
    text = log.read_text()
    while not text.endswith("\n") and time.monotonic() < deadline:
        time.sleep(0.05)
        text = log.read_text()
    return text


async def test_a_request_id_is_echoed_or_made_up(client: TestClient[Any, Any], keys: Keys
                                                 ) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c"})
    assert r.headers["X-Request-ID"] == "lb-7f3a9c"
    made = (await client.get("/healthz")).headers["X-Request-ID"]
    assert len(made) == 32 and made != (await client.get("/healthz")).headers["X-Request-ID"]
    for unusable in ("x" * 200, "two words", "4111111111111111", "-starts-with-a-dash"):
        echoed = (await client.get("/healthz", headers={"X-Request-ID": unusable}))
        assert echoed.status == 200 and echoed.headers["X-Request-ID"] != unusable

    missing = await client.get("/no/such/route", headers={"X-Request-ID": "req-404"})
    assert missing.headers["X-Request-ID"] == "req-404"
    assert (await missing.json())["request_id"] == "req-404"

    stream = await client.get("/v1/handoffs/events",
                              headers={**keys("agent"), "X-Request-ID": "panel-1"})
    assert stream.status == 200 and stream.headers["X-Request-ID"] == "panel-1"
    stream.close()


async def test_the_access_line_names_the_customer_by_id_not_by_the_identity_used(
        client: TestClient[Any, Any], keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    r = await client.post("/v1/conversations/web-7f3a/turns", headers=keys("bot"), json={
        "customer": {"identities": [{"kind": "chat", "value": "visitor-42"}]},
        "channel": "chat", "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": TS}]})
    customer = (await r.json())["customer_id"]
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        r = await client.get("/v1/customers/chat:visitor-42/context", headers=keys("agent"))
    assert r.status == 200
    (line,) = [rec for rec in caplog.records if rec.name == "handoff.access"]
    fields = line.fields  # type: ignore[attr-defined]
    assert (fields["route"], fields["customer_id"]) == ("/v1/customers/{ref}/context", customer)
    assert "visitor-42" not in line.getMessage() + json.dumps(fields)


async def test_the_access_line_logs_only_fields_that_are_safe_by_themselves(
        client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture) -> None:
    # The access line skips the whole-line mask: each of its fields must be safe by itself.
    # (A method token of digits is refused by the HTTP parser before any of this runs.)
    handler = logging.StreamHandler(out := io.StringIO())
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger("handoff.access").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="handoff.access"):
            r = await client.request("PROPFIND", "/healthz",
                                     headers={"X-Request-ID": "4111 1111 1111 1111"})
    finally:
        logging.getLogger("handoff.access").removeHandler(handler)
    assert r.status == 405
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert (line["method"], line["status"]) == ("OTHER", 405)
    assert "1111" not in out.getvalue()


def test_lines_logged_while_serving_a_request_carry_its_id_and_are_masked() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.MaskCardNumbers())
    log = logging.getLogger("handoff.test.request_context")
    log.addHandler(handler)
    log.propagate = False
    try:
        _, token = logs.begin_request("req-42")
        log.warning("card %s declined", PAN, extra={"fields": {"typed": PAN.replace(" ", "")}})
        logs.end_request(token)
        log.warning("between requests")
    finally:
        log.removeHandler(handler)
    during, after = (json.loads(line) for line in out.getvalue().splitlines())
    assert during["request_id"] == "req-42" and during["level"] == "warning"
    assert during["message"] == "card **** **** **** 1111 declined"
    assert during["typed"] == "**** **** **** 1111"
    assert "request_id" not in after


def test_text_format_is_for_people() -> None:
    record = logging.LogRecord("handoff.access", logging.INFO, __file__, 1, "GET %s %d",
                               ("/healthz", 200), None)
    record.fields = {"request_id": "req-1", "tenant": None, "latency_ms": 0.4}
    text = logs.TextFormatter().format(record)
    assert "INFO handoff.access GET /healthz 200 request_id=req-1 latency_ms=0.4" in text
    assert "tenant" not in text
