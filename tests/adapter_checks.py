"""Checks every adapter's tests make the same way: what is refused, and that it changed nothing."""

from __future__ import annotations

import uuid
from typing import Any

import redis
from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.kernel.masking import has_card_number
from tests.conftest import Keys
from tests.redis_peek import assert_unchanged, not_an_attempt_counter, snapshot
from tests.scenario import ROLES, assert_problem, call


async def refuses_raw_body(client: TestClient[Any, Any], redis_sync: redis.Redis, url: str,
                           headers: dict[str, str], raw: bytes, content_type: str,
                           status: int) -> None:
    """A body that is not the vendor's payload at all gets `status` and changes nothing."""
    before = snapshot(redis_sync, not_an_attempt_counter)
    assert_problem(await call(client, "POST", url, data=raw,
                              headers={**headers, "Content-Type": content_type}), status)
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


async def only_role_may_post(client: TestClient[Any, Any], redis_sync: redis.Redis, keys: Keys,
                             url: str, body: Any, role: str) -> None:
    """Keys of every other role get 403, no key gets 401, and neither changes anything."""
    before = snapshot(redis_sync, not_an_attempt_counter)
    for other in (r for r in ROLES if r != role):
        assert_problem(await call(client, "POST", url, headers=keys(other), json_body=body), 403)
    assert_problem(await call(client, "POST", url, json_body=body), 401)
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


def card_like_session() -> str:
    """A random UUID whose digits, read across its dashes, hold a Luhn-valid card number: about
    one in 500 do, and Amazon Connect, Lex and many chat widgets name sessions with UUIDs."""
    while True:
        session = str(uuid.uuid4())
        if has_card_number(session):
            return session


def stored_id(client: TestClient[Any, Any], vendor_id: str) -> str:
    """A vendor's id as the service stores it: as given, or digested under the service's key
    when it holds a card number (`Privacy.safe_id`, which the adapters apply too)."""
    stored: str = client.app[DEPS].privacy.safe_id(vendor_id)
    return stored
