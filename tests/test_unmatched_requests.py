"""What a browser or a lost client asks for beyond the API: the icon every page load requests is
served, and a request that matches no route is logged with a path the operator can read, with
nothing in it that names a customer or opens a door."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Keys

Client = TestClient[Any, Any]
PAN = "4111111111111111"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access lines logged so far, each as its message and its fields."""
    return [{"message": r.getMessage(), **r.fields}  # type: ignore[attr-defined]
            for r in caplog.records if r.name == "handoff.access"]


async def test_the_icon_a_panel_load_asks_for_is_served_and_logged_by_its_route(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        r = await client.get("/favicon.ico")
        icon = await r.read()
    assert r.status == 200 and r.content_type == "image/x-icon"
    assert icon[:4] == b"\x00\x00\x01\x00", "an ICO file"
    assert icon[22:30] == b"\x89PNG\r\n\x1a\n", "holding one PNG image"
    assert "max-age" in r.headers["Cache-Control"]
    (line,) = access_lines(caplog)
    assert (line["message"], line["route"], line["status"]) == (
        "GET /favicon.ico 200", "/favicon.ico", 200)
    assert "path" not in line


async def test_a_request_for_no_route_is_logged_with_its_path_so_the_operator_sees_what_failed(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        r = await client.get("/apple-touch-icon.png")
    assert r.status == 404
    (line,) = access_lines(caplog)
    assert line["message"] == "GET /apple-touch-icon.png 404"
    assert (line["route"], line["path"], line["status"]) == (None, "/apple-touch-icon.png", 404)


SENSITIVE = {
    "an account number in a mistyped route": (
        "/v1/customers/account:88812345/contxt", "/v1/customers/account:*/contxt", "88812345"),
    "a phone number, percent-encoded": (
        "/v1/customers/phone:%2B15550104477/brief", "/v1/customers/phone:*/brief", "5550104477"),
    "an email address": ("/v1/profiles/ana@example.com", "/v1/profiles/*@*", "ana@example"),
    "a card number": (f"/v1/pay/{PAN}", "/v1/pay/**** **** **** 1111", PAN),
    "a long run of digits": ("/v1/orders/88812345678", "/v1/orders/*", "88812345678"),
    "a query string carrying a panel token": (
        "/panel?access_token=dt_abcdef.ghijkl", "/panel", "dt_abcdef"),
}


@pytest.mark.parametrize(("asked", "shown", "secret"), SENSITIVE.values(), ids=SENSITIVE.keys())
async def test_an_unmatched_path_is_logged_without_what_could_name_a_customer_or_open_a_door(
        asked: str, shown: str, secret: str, client: Client, keys: Keys,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        r = await client.get(asked, headers=keys("agent"))
    assert r.status in (404, 405)
    (line,) = access_lines(caplog)
    assert line["path"] == shown and line["route"] is None
    assert line["message"] == f"GET {shown} {r.status}"
    assert secret not in json.dumps(line)


async def test_an_api_key_in_an_unmatched_path_is_redacted(
        client: Client, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    secret = keys.secrets[("acme", "agent")]
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        await client.get(f"/v1/keys/{secret}")
    (line,) = access_lines(caplog)
    assert line["path"] == "/v1/keys/hk_[REDACTED]"
    assert secret[3:] not in json.dumps(line)


async def test_an_endless_unmatched_path_is_cut_short_in_the_log(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="handoff.access"):
        r = await client.get("/static/" + "a/" * 2000 + "x.js")
    assert r.status == 404
    (line,) = access_lines(caplog)
    assert len(line["path"]) == 120 and line["path"].startswith("/static/a/a/")
    assert line["path"].endswith("…")
