"""Refusals that say what to do: which key a route needs, which customer refs a bot or an IVR
may use, which identity kinds exist, and what a first write must add so the customer can be
told apart."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.redis_peek import assert_unchanged, snapshot
from tests.scenario import (
    ACCOUNT,
    PHONE,
    VERIFY_BODY,
    World,
    assert_problem,
    build_world,
    call,
    chat_customer,
    ref,
)

Client = TestClient[Any, Any]
KINDS = "phone, email, account, chat, crm or x-<name>"

WRONG_ROLES = {
    "an agent requesting a hand-off": ("agent", "POST", "/v1/handoffs",
                                       "an agent key may not use this route; it needs a bot "
                                       "or ivr key"),
    "an IVR accepting a hand-off": ("ivr", "POST", "/v1/handoffs/ho_01JC0000000000000000000000/"
                                    "accept", "an ivr key may not use this route; it needs an "
                                    "agent key"),
    "an admin posting turns": ("admin", "POST", "/v1/conversations/web-7f3a/turns",
                               "an admin key may not use this route; it needs an agent, bot or "
                               "ivr key"),
    "a bot verifying an identity": ("bot", "POST", "/v1/verifications",
                                    "a bot key may not use this route; it needs an agent or ivr "
                                    "key"),
}


@pytest.mark.parametrize(("role", "method", "path", "detail"), WRONG_ROLES.values(),
                         ids=WRONG_ROLES.keys())
async def test_a_key_of_the_wrong_role_is_told_in_plain_english_which_one_the_route_needs(
        role: str, method: str, path: str, detail: str, client: Client, keys: Keys) -> None:
    answer = await call(client, method, path, headers=keys(role), json_body={})
    assert assert_problem(answer, 403)["detail"] == detail


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def test_a_bot_asking_by_phone_is_told_which_refs_it_may_use_whether_or_not_they_exist(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await build_world(client, keys)  # the caller of +15550104477 exists, verified by the IVR
    before = snapshot(redis_sync)
    known = assert_problem(await call(client, "GET", f"/v1/customers/{ref('phone:' + PHONE)}/"
                                      "context", headers=keys("bot")), 403)
    unknown = assert_problem(await call(client, "GET", f"/v1/customers/{ref('phone:+15559990000')}"
                                        "/context", headers=keys("bot")), 403)
    assert known["detail"] == (
        "a bot key may look a customer up only by its id (cus_...) or by chat:..., what its own "
        "channel proves; phone: refs need an agent key")
    # Refused from the ref alone: the answer says nothing of who exists, and nothing was read
    # (an audited read would have left an entry).
    assert without_request_id(unknown) | {"instance": ""} == without_request_id(known) | {
        "instance": ""}
    assert_unchanged(before, snapshot(redis_sync))


async def test_an_ivr_may_look_up_by_phone_but_is_told_an_account_number_needs_an_agent(
        client: Client, keys: Keys) -> None:
    world: World = await build_world(client, keys)
    by_phone = await call(client, "GET", f"/v1/customers/{ref('phone:' + PHONE)}/context",
                          headers=keys("ivr"))
    assert by_phone.status == 200 and by_phone.json()["customer"]["id"] == world.customer_id
    refused = await call(client, "GET", f"/v1/customers/account:{ACCOUNT}/context",
                         headers=keys("ivr"))
    assert assert_problem(refused, 403)["detail"] == (
        "an ivr key may look a customer up only by its id (cus_...) or by chat:... or "
        "phone:..., what its own channel proves; account: refs need an agent key")


REFS_WITHOUT_A_KIND = {"an unknown kind": "foo:bar", "no kind at all": ACCOUNT,
                       "a card number where the kind goes": "4111111111111111:x"}


@pytest.mark.parametrize("customer", REFS_WITHOUT_A_KIND.values(), ids=REFS_WITHOUT_A_KIND.keys())
async def test_a_ref_of_no_known_identity_kind_is_unprocessable_and_lists_the_kinds(
        customer: str, client: Client, keys: Keys) -> None:
    answer = await call(client, "GET", f"/v1/customers/{ref(customer)}/context",
                        headers=keys("agent"))
    problem = assert_problem(answer, 422)
    assert problem["detail"] == (
        "a customer ref is a customer id (cus_...) or kind:value (e.g. account:88812345) with "
        f"kind one of {KINDS}")
    assert problem["errors"] == [{"loc": ["path", "ref"],
                                  "msg": f"unknown identity kind; expected {KINDS}"}]
    assert "4111111111111111" not in answer.raw.decode()


async def test_the_audit_trail_names_its_query_parameter_for_a_customer_of_no_kind(
        client: Client, keys: Keys) -> None:
    answer = await call(client, "GET", "/v1/admin/audit?customer=foo:bar", headers=keys("admin"))
    assert assert_problem(answer, 422)["errors"][0]["loc"] == ["query", "customer"]


async def test_a_handoff_naming_the_visitor_without_a_channel_is_told_to_add_one(
        client: Client, keys: Keys) -> None:
    answer = await call(client, "POST", "/v1/handoffs", headers=keys("bot"), json_body={
        "customer": chat_customer(), "reason": "customer_request", "queue": "billing"})
    problem = assert_problem(answer, 422)
    assert problem["detail"].startswith("cannot tell who the customer is: ")
    (error,) = problem["errors"]
    assert error["loc"] == ["customer"]
    assert error["msg"] == (
        'give a conversation_id, or say which channel this is ("channel": "chat", "voice", '
        '"sms" or "email") and give the identity it owns (chat on chat, phone on voice, '
        "phone on sms, email on email)")
    again = await call(client, "POST", "/v1/handoffs", headers=keys("bot"), json_body={
        "customer": chat_customer(), "channel": "chat", "reason": "customer_request",
        "queue": "billing"})
    assert again.status == 201, again.raw


async def test_a_verification_on_a_channel_without_its_identity_names_the_one_it_needs(
        client: Client, keys: Keys) -> None:
    body = {**VERIFY_BODY, "customer": chat_customer(), "conversation_id": None}
    problem = assert_problem(await call(client, "POST", "/v1/verifications",
                                        headers=keys("ivr"), json_body=body), 422)
    assert problem["errors"][0]["msg"] == (
        "give a conversation_id or a phone identity, the one voice owns")
    social = {**body, "channel": "social"}
    problem = assert_problem(await call(client, "POST", "/v1/verifications",
                                        headers=keys("ivr"), json_body=social), 422)
    assert problem["errors"][0]["msg"] == (
        "give a conversation_id: on social no identity is trusted")
