"""Hostile requests found in review: each was once answered with a 500 or let something through.

HTTP header values reach aiohttp as bytes; any byte that is not UTF-8 becomes a lone surrogate in
the `str` a handler sees, which no codec will encode again. Credentials and signatures are ASCII,
so such a value is simply a wrong one. These tests speak raw HTTP to a real server, because no
client library will send such bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.conftest import AppFactory, Keys
from tests.scenario import build_world, ok
from tests.test_adapter_twilio_voice import TOKEN, VOICE, basic

Client = TestClient[Any, Any]


async def raw_request(client: Client, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (request line and headers, without the blank line) and `body` as they are;
    the status and the whole answer."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"\r\nHost: handoff.test\r\nConnection: close\r\n"
                     + (b"Content-Length: %d\r\n" % len(body) if body else b"")
                     + b"\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.parametrize("authorization", [
    b"Bearer \xff\xfe",  # not UTF-8 at all
    b"Bearer hk_\xc3\xa9\xff",  # partly UTF-8
    b"Basic \xff",  # Basic credentials that are not base64 text
    b"Basic \xc3\xa9t\xc3\xa9",  # non-ASCII, so not base64 either
    b"Bearer dt_\xff.\xff",  # a panel token with garbage bytes
])
async def test_credentials_that_are_not_text_are_a_401_not_a_500(
        client: Client, authorization: bytes) -> None:
    status, answer = await raw_request(
        client, b"GET /v1/handoffs HTTP/1.1\r\nAuthorization: " + authorization)
    assert status == 401, answer[:400]
    assert b"application/problem+json" in answer


@pytest.mark.parametrize("query", [b"access_token=dt_%FF.%FF", b"access_token=dt_%ED%A0%80.x"])
async def test_a_panel_token_in_the_query_that_is_not_text_is_a_401(
        client: Client, query: bytes) -> None:
    status, answer = await raw_request(client, b"GET /v1/handoffs/events?" + query
                                       + b" HTTP/1.1")
    assert status == 401, answer[:400]


async def test_a_twilio_signature_that_is_not_text_is_refused_like_a_wrong_one(
        make_client: AppFactory, keys: Keys) -> None:
    twilio = await make_client(twilio_auth_tokens={"acme": SecretStr(TOKEN)})
    body = urlencode([("CallSid", "CA0123456789abcdef0123456789abcdef"),
                      ("From", "+14155550123")]).encode()
    status, answer = await raw_request(
        twilio, b"POST " + VOICE.encode() + b" HTTP/1.1\r\nAuthorization: "
        + basic(keys)["Authorization"].encode()
        + b"\r\nContent-Type: application/x-www-form-urlencoded"
        + b"\r\nX-Twilio-Signature: \xff\xfe", body)
    assert status == 403, answer[:400]
    # Nothing was recorded for the refused call.
    queue = await ok(twilio, "GET", "/v1/handoffs", keys("agent"))
    assert queue["items"] == []


async def test_an_agent_name_that_is_not_text_is_a_422_and_reads_nothing(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    agent = keys("agent")["Authorization"].encode()
    for path in (f"/v1/customers/{world.customer_id}/context",
                 f"/v1/customers/{world.customer_id}/turns"):
        status, answer = await raw_request(
            client, b"GET " + path.encode() + b" HTTP/1.1\r\nAuthorization: " + agent
            + b"\r\nX-Agent-Id: agent-\xff\xfe")
        assert status == 422, answer[:400]
    audit = await ok(client, "GET", "/v1/admin/audit", keys("admin"))
    assert audit["items"] == []
