"""Amazon Connect adapter: contact-flow Lambda events, forwarded as-is, answered as a flat map.

Vendor documentation the payloads and rules come from:
- the event and the answer's rules ("a flat object of key/value pairs, with values that include
  only alphanumeric, dash, and underscore characters", under 32 KB):
  https://docs.aws.amazon.com/connect/latest/adminguide/connect-lambda-functions.html
- the same event in the Lambda guide: https://docs.aws.amazon.com/lambda/latest/dg/services-connect.html
- STRING_MAP response validation:
  https://docs.aws.amazon.com/connect/latest/APIReference/interactions-invokelambdafunction.html
Bodies are the samples in tests/vendor_samples (see SOURCES.md) with ids, numbers and
parameters varied; the docs' `InitiationMethod` placeholder is replaced by `INBOUND`.
"""

from __future__ import annotations

import copy
import json
import random
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.adapter_checks import refuses_raw_body, stored_id
from tests.conftest import Keys
from tests.redis_peek import assert_unchanged, not_an_attempt_counter, snapshot
from tests.scenario import assert_problem, brief_of, call, ok, ref

SAMPLES = Path(__file__).parent / "vendor_samples"
FLOW = "/v1/adapters/amazon-connect/contact-flow"
EVENTS = ("connect-lambda-event.json", "connect-lambda-event-admin-guide.json",
          "connect-lambda-event-sam.json")
CONNECT_VALUE = re.compile(r"^[A-Za-z0-9_-]*$")
Json = dict[str, Any]


def event(name: str = EVENTS[0], *, phone: str | None = None, contact: str | None = None,
          initial: str | None = None, **parameters: str) -> Json:
    """A published event with a fresh contact, a caller number and the flow's parameters."""
    body: Json = json.loads((SAMPLES / name).read_text())
    data = body["Details"]["ContactData"]
    contact = contact or str(uuid.uuid4())
    data |= {"ContactId": contact, "InitialContactId": initial or contact,
             "PreviousContactId": initial or contact, "InitiationMethod": "INBOUND"}
    data["CustomerEndpoint"]["Address"] = phone or f"+1415{random.randint(2000000, 9999999)}"
    body["Details"]["Parameters"] = parameters
    return body


def phone_of(body: Json) -> str:
    return str(body["Details"]["ContactData"]["CustomerEndpoint"]["Address"])


async def flow(client: TestClient[Any, Any], keys: Keys, body: Json, *, role: str = "ivr",
               tenant: str = "acme") -> Json:
    """Post as the forwarding Lambda does; the answer must be what Connect accepts."""
    answer: Json = await ok(client, "POST", FLOW, keys(role, tenant), body)
    assert all(isinstance(v, str) and CONNECT_VALUE.match(v) for v in answer.values()), answer
    assert all(re.match(r"^[A-Za-z0-9_]+$", k) for k in answer)
    assert len(json.dumps(answer).encode()) < 32 * 1024
    return answer


@pytest.mark.parametrize("sample", EVENTS)
async def test_identify_records_the_call_and_answers_what_is_known(
        client: TestClient[Any, Any], keys: Keys, sample: str) -> None:
    body = event(sample, operation="identify", fact_issue="billing", account="55500011")

    answer = await flow(client, keys, body)

    assert answer | {"customer_id": "-"} == {
        "result": "ok", "customer_id": "-", "verified": "false", "returning": "false",
        "code_digits": "6"}
    brief = await brief_of(client, keys, f"phone:{phone_of(body)}")
    contact = body["Details"]["ContactData"]
    assert brief["customer"]["id"] == answer["customer_id"]
    assert [(j["channel"], j["conversation_id"], j["source"]) for j in brief["journey"]] == [
        ("voice", stored_id(client, contact["ContactId"]), "amazon-connect")]
    (start,) = brief["turns"]
    assert start["role"] == "system" and "inbound" in start["text"]
    queue = contact["Queue"]["Name"] if isinstance(contact["Queue"], dict) else contact["Queue"]
    assert (f"queue {queue}" in start["text"]) == (queue is not None)
    assert brief["facts"]["issue"]["value"] == "billing"
    account = next(i for i in brief["customer"]["identities"] if i["kind"] == "account")
    assert (account["value"], account["verified"]) == ("55500011", False)


async def test_a_pin_checked_by_the_flow_verifies_and_the_transferred_leg_knows_it(
        client: TestClient[Any, Any], keys: Keys) -> None:
    first = event(operation="identify")
    await flow(client, keys, first)
    contact = first["Details"]["ContactData"]["ContactId"]

    verified = await flow(client, keys, event(
        phone=phone_of(first), contact=contact, operation="verify", account="88812345",
        method="pin", level="high"))
    # The next leg after a transfer: a new ContactId, the same InitialContactId, no number.
    leg = event(initial=contact, operation="identify")
    leg["Details"]["ContactData"]["CustomerEndpoint"] = None
    after = await flow(client, keys, leg)

    assert verified["verified"] == "true" and verified["verified_level"] == "high"
    assert (after["customer_id"], after["verified"], after["verified_level"],
            after["verified_kind"]) == (verified["customer_id"], "true", "high", "account")
    brief = await brief_of(client, keys, "account:88812345")
    (proof,) = brief["verifications"]
    assert (proof["method"], proof["level"], proof["channel"], proof["conversation_id"]) == (
        "pin", "high", "voice", stored_id(client, contact))
    assert len(brief["journey"]) == 1 and "as leg" in brief["turns"][-1]["text"]


async def test_a_verification_on_another_call_is_not_this_calls(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = event(operation="verify", account="70001234")
    await flow(client, keys, body)
    again = await flow(client, keys, event(phone=phone_of(body), operation="identify"))
    assert (again["verified"], again["returning"]) == ("false", "true")


async def test_a_code_entered_in_the_flow_joins_the_chat_and_mistakes_are_results(
        client: TestClient[Any, Any], keys: Keys) -> None:
    chat = {"identities": [{"kind": "chat", "value": "visitor-cx"}]}
    await ok(client, "POST", "/v1/conversations/web-cx/turns", keys("bot"), {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [{"id": "t1", "role": "customer", "text": "I need to change my address",
                   "ts": "2026-11-23T10:02:00Z"}]})
    handoff = await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": "web-cx", "reason": "customer_request",
        "queue": "accounts", "continuation": True}, status=201)
    code = handoff["continuation_code"]
    body = event(operation="identify")
    await flow(client, keys, body)
    contact = body["Details"]["ContactData"]["ContactId"]

    def attempt(entered: str) -> Json:
        return event(phone=phone_of(body), contact=contact, operation="redeem", code=entered)

    short = await flow(client, keys, attempt("12"))
    wrong = await flow(client, keys, attempt("000000" if code != "000000" else "111111"))
    joined = await flow(client, keys, attempt(" ".join(code)))

    assert short == {"result": "invalid_code", "code_digits": "6"}
    assert wrong == {"result": "not_found"}
    assert (joined["result"], joined["handoff_id"]) == ("ok", handoff["id"])
    brief = await brief_of(client, keys, "chat:visitor-cx")
    assert [j["channel"] for j in brief["journey"]] == ["chat", "voice"]
    assert brief["turns"][-1]["text"] == "Caller entered a continuation code"
    after = await flow(client, keys, event(phone=phone_of(body), contact=contact))
    assert (after["customer_id"], after["handoff_id"], after["handoff_queue"]) == (
        handoff["customer_id"], handoff["id"], "accounts")


async def test_too_many_wrong_codes_lock_the_call_as_a_result_the_flow_can_branch_on(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = event(operation="redeem", code="000001")
    contact = body["Details"]["ContactData"]["ContactId"]
    results = [(await flow(client, keys, event(phone=phone_of(body), contact=contact,
                                               operation="redeem", code=f"00000{n}")))["result"]
               for n in range(1, 5)]
    assert results == ["not_found"] * 3 + ["locked"]


async def test_a_handoff_from_the_flow_is_queued_once_however_often_it_is_retried(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = event(operation="handoff", queue="billing", priority="2",
                 summary="Disputes a charge", reason="customer_request")
    first = await flow(client, keys, body)
    retry = await flow(client, keys, copy.deepcopy(body))

    assert first == retry and first["handoff_status"] == "pending"
    queue = await ok(client, "GET", "/v1/handoffs?queue=billing", keys("agent"))
    (item,) = queue["items"]
    assert (item["id"], item["summary"], item["priority"], item["channel"]) == (
        first["handoff_id"], "Disputes a charge", 2, "voice")


async def test_turns_from_the_flow_appear_once_in_the_brief(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = event(operation="turn", text="Press 2 was chosen: lost card", role="customer",
                 intent="lost_card")
    first = await flow(client, keys, body)
    second = await flow(client, keys, body)

    assert (first["appended"], second["appended"]) == ("1", "0")
    brief = await brief_of(client, keys, f"phone:{phone_of(body)}")
    assert [(t["role"], t["text"], t["intent"]) for t in brief["turns"]] == [
        ("customer", "Press 2 was chosen: lost card", "lost_card")]


def _broken(change: str) -> Json:
    body = event(operation="identify")
    data = body["Details"]["ContactData"]
    if change == "no ContactId":
        del data["ContactId"]
    elif change == "Parameters not strings":
        body["Details"]["Parameters"] = {"operation": "identify", "fact_x": 12}
    elif change == "Queue a number":
        data["Queue"] = 7
    elif change == "no Details":
        del body["Details"]
    elif change == "unknown operation":
        body["Details"]["Parameters"] = {"operation": "transfer"}
    elif change == "verify without account":
        body["Details"]["Parameters"] = {"operation": "verify"}
    elif change == "a role nobody has":
        body["Details"]["Parameters"] = {"operation": "turn", "text": "hi", "role": "robot"}
    elif change == "a fact name we cannot keep":
        body["Details"]["Parameters"] = {"operation": "identify", "fact_9 x": "y"}
    return body


@pytest.mark.parametrize(("change", "where"), [
    ("no ContactId", "ContactId"), ("Parameters not strings", "fact_x"),
    ("Queue a number", "Queue"), ("no Details", "Details"),
    ("unknown operation", "operation"), ("verify without account", "account"),
    ("a role nobody has", "role"), ("a fact name we cannot keep", "facts"),
])
async def test_an_event_that_cannot_be_mapped_is_a_422_naming_the_field_and_changes_nothing(
        client: TestClient[Any, Any], keys: Keys, redis_sync: Any, change: str,
        where: str) -> None:
    before = snapshot(redis_sync, not_an_attempt_counter)
    answer = await call(client, "POST", FLOW, headers=keys("ivr"), json_body=_broken(change))
    problem = assert_problem(answer, 422)
    assert any(where in [str(p) for p in e["loc"]] or where in ".".join(map(str, e["loc"]))
               for e in problem["errors"]), problem
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


@pytest.mark.parametrize(("data", "content_type", "status"), [
    (b'{"Details": ', "application/json", 400),
    (b"\x00\xff garbage", "application/json", 400),
    (b"Details=1", "application/x-www-form-urlencoded", 415),
])
async def test_garbage_is_refused_and_changes_nothing(
        client: TestClient[Any, Any], keys: Keys, redis_sync: Any, data: bytes,
        content_type: str, status: int) -> None:
    await refuses_raw_body(client, redis_sync, FLOW, keys("ivr"), data, content_type, status)


async def test_only_ivr_keys_may_call_and_tenants_stay_apart(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = event(operation="identify")
    assert_problem(await call(client, "POST", FLOW, json_body=body), 401)
    for role in ("bot", "agent", "admin"):
        assert_problem(await call(client, "POST", FLOW, headers=keys(role), json_body=body), 403)

    acme = await flow(client, keys, body)
    globex = await flow(client, keys, body, tenant="globex")

    assert acme["customer_id"] != globex["customer_id"]
    assert_problem(await call(client, "GET", f"/v1/customers/{ref(acme['customer_id'])}/context",
                              headers=keys("agent", "globex")), 404)


async def test_contact_ids_that_read_like_card_numbers_are_still_recorded(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = event(contact="41111111-1111-1111-1111-abcdefabcdef", operation="identify")
    await flow(client, keys, body)
    brief = await brief_of(client, keys, f"phone:{phone_of(body)}")
    (journey,) = brief["journey"]
    assert "4111" not in journey["conversation_id"]


async def test_the_openapi_document_lists_the_route_for_ivr_keys(
        client: TestClient[Any, Any]) -> None:
    paths = (await ok(client, "GET", "/openapi.json", {}))["paths"]
    assert paths[FLOW]["post"]["description"] == "Roles: ivr"
