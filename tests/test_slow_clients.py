"""A client that sends its request headers too slowly is disconnected; everyone else is served.

Against a real `handoff serve` with `HANDOFF_HEADER_TIMEOUT=2`: a request head has two seconds
to arrive, from the connection opening (its first request) or from its first byte (a later one
on a kept-alive connection). Waiting idle between requests and sending a body slowly are not
head time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer, free_port
from tests.faults.service import HOST, Service, mint_key

HEADER_TIMEOUT = 2.0
# Long enough for a process on a busy 2-core machine to notice; far below aiohttp's own 75 s.
SLACK = 3.0
HEAD = b"GET /healthz HTTP/1.1\r\nHost: handoff\r\nX-Padding: " + b"a" * 40 + b"\r\n\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """`handoff serve` with a two-second header timeout, on a Redis of its own; a bot key."""
    root = tmp_path_factory.mktemp("slow-clients")
    (root / "redis").mkdir()
    store = RedisServer(root / "redis", free_port())
    service = Service("", free_port(), root / "serve.log",
                      extra_env={"HANDOFF_HEADER_TIMEOUT": str(HEADER_TIMEOUT)})
    try:
        store.start()
        service.redis_url = store.url
        service.start()
        yield service, mint_key(store.url, "bot")
    finally:
        service.stop()
        store.stop()


async def connect(service: Service) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, service.port)


async def drip(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """One byte of `data` every `every` seconds, for as long as the server keeps the socket."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)


async def disconnected_after(reader: asyncio.StreamReader, within: float) -> float:
    """Seconds until the server closed the connection (without answering), failing the test
    if it has not within `within` seconds."""
    start = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        data = b""
    except TimeoutError:
        pytest.fail(f"still connected after {within:.0f} s")
    assert data == b"", f"the server answered instead: {data[:80]!r}"
    return time.monotonic() - start


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response read off a kept-alive connection: (status, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(": ") for line in lines[1:])
                  if k.lower() == "content-length")
    return int(lines[0].split()[1]), await asyncio.wait_for(reader.readexactly(length), 10)


async def healthy(service: Service) -> bool:
    reader, writer = await connect(service)
    try:
        writer.write(HEAD)
        status, _ = await answer(reader)
        return status == 200
    finally:
        writer.close()


async def test_headers_sent_one_byte_a_second_are_cut_off_after_the_timeout(
        served: tuple[Service, str]) -> None:
    service, _ = served
    reader, writer = await connect(service)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    dripping = asyncio.create_task(drip(writer, b"Host: handoff\r\nX-Slow: " + b"a" * 60, 1.0))
    try:
        took = await disconnected_after(reader, HEADER_TIMEOUT + SLACK)
        assert took >= HEADER_TIMEOUT - 0.5
    finally:
        dripping.cancel()
        writer.close()
    assert await healthy(service)


async def test_a_connection_that_never_sends_a_request_is_closed_after_the_timeout(
        served: tuple[Service, str]) -> None:
    service, _ = served
    reader, writer = await connect(service)
    try:
        await disconnected_after(reader, HEADER_TIMEOUT + SLACK)
    finally:
        writer.close()


async def test_a_later_request_on_a_kept_alive_connection_has_the_same_deadline(
        served: tuple[Service, str]) -> None:
    service, _ = served
    reader, writer = await connect(service)
    try:
        writer.write(HEAD)
        assert (await answer(reader))[0] == 200
        # Idle longer than the header timeout: that is keep-alive time, not head time.
        await asyncio.sleep(HEADER_TIMEOUT + 1)
        writer.write(HEAD)
        assert (await answer(reader))[0] == 200
        dripping = asyncio.create_task(drip(writer, HEAD, 0.5))
        await disconnected_after(reader, HEADER_TIMEOUT + SLACK)
        dripping.cancel()
    finally:
        writer.close()


async def test_a_body_sent_slowly_after_prompt_headers_is_still_answered(
        served: tuple[Service, str]) -> None:
    service, bot = served
    body = json.dumps({
        "customer": {"identities": [{"kind": "chat", "value": "visitor-slow"}]},
        "channel": "chat",
        "turns": [{"id": "t1", "role": "customer", "text": "on a very slow train",
                   "ts": "2026-11-23T10:02:00Z"}]}).encode()
    reader, writer = await connect(service)
    try:
        writer.write(b"POST /v1/conversations/web-slow/turns HTTP/1.1\r\nHost: handoff\r\n"
                     b"Authorization: Bearer " + bot.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        pieces = 4
        for n in range(pieces):  # the body takes twice the header timeout to arrive
            writer.write(body[n * len(body) // pieces:(n + 1) * len(body) // pieces])
            await writer.drain()
            await asyncio.sleep(HEADER_TIMEOUT * 2 / pieces)
        status, answered = await answer(reader)
        assert status == 200, answered
        assert json.loads(answered)["appended"] == 1
    finally:
        writer.close()


async def test_a_slow_loris_crowd_is_shed_while_normal_requests_are_answered(
        served: tuple[Service, str]) -> None:
    service, _ = served
    crowd = 200
    connections = await asyncio.gather(*(connect(service) for _ in range(crowd)))
    for _, writer in connections:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    dripping = [asyncio.create_task(drip(writer, b"Host: handoff\r\nX-Slow: " + b"a" * 60, 0.5))
                for _, writer in connections]
    try:
        gone = asyncio.gather(*(disconnected_after(reader, HEADER_TIMEOUT + SLACK)
                                for reader, _ in connections))
        for _ in range(5):  # the crowd in place, everyone else is answered at once
            started = time.monotonic()
            assert await healthy(service)
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.2)
        took = await gone
        assert max(took) <= HEADER_TIMEOUT + SLACK
    finally:
        for task in dripping:
            task.cancel()
        await asyncio.gather(*dripping, return_exceptions=True)
        for _, writer in connections:
            writer.close()
    assert await healthy(service)

