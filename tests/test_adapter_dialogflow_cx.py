"""Dialogflow CX webhooks, posted as Google's samples shape them, read back as an agent would.

Request and response formats:
https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookRequest
https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookResponse
Samples: tests/vendor_samples/dialogflow-cx-*.json (see SOURCES.md, section 4).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from tests.adapter_checks import (
    card_like_session,
    only_role_may_post,
    refuses_raw_body,
    stored_id,
)
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, everything, snapshot
from tests.scenario import assert_problem, brief_of, call, ok, phone_customer

Client = TestClient[Any, Any]
Json = dict[str, Any]
SAMPLES = Path(__file__).parent / "vendor_samples"
URL = "/v1/adapters/dialogflow-cx/webhook"


def sample(name: str) -> Json:
    loaded: Json = json.loads((SAMPLES / f"dialogflow-cx-{name}.json").read_text())
    return loaded


def webhook(text: str = "I was charged twice for order A-1001", *, session: str | None = None,
            tag: str = "billing", parameters: Json | None = None,
            messages: tuple[str, ...] = ()) -> tuple[str, Json]:
    """Google's sample request in a fresh session, saying `text`, with the agent's answers."""
    body = copy.deepcopy(sample("webhook-request"))
    session = session or f"s-{uuid.uuid4().hex[:12]}"
    prefix = body["sessionInfo"]["session"].rsplit("/", 1)[0]
    body["sessionInfo"] = {"session": f"{prefix}/{session}", "parameters": parameters or {}}
    body["detectIntentResponseId"] = str(uuid.uuid4())
    body["text"] = text
    body["intentInfo"] |= {"displayName": "billing.double_charge", "confidence": 0.87}
    body["fulfillmentInfo"]["tag"] = tag
    body["messages"] = [{"text": {"text": [m]}} for m in messages]
    return session, body


async def post(client: Client, keys: Keys, body: Any, role: str = "bot",
               tenant: str = "acme") -> Json:
    result = await ok(client, "POST", URL, keys(role, tenant), body)
    return result


async def test_what_the_customer_typed_and_the_agent_answered_reaches_the_brief(
        client: Client, keys: Keys) -> None:
    session, body = webhook(parameters={"order_number": "A-1001", "email": "Ana@Example.com"},
                            messages=("Sorry about that. Which card was charged?",))
    assert await post(client, keys, body) == {}  # nothing for the agent to say on a plain turn
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [(t["role"], t["text"], t["channel"]) for t in brief["turns"]] == [
        ("customer", "I was charged twice for order A-1001", "chat"),
        ("bot", "Sorry about that. Which card was charged?", "chat")]
    said = brief["turns"][0]
    assert (said["intent"], said["confidence"], said["conversation_id"]) == (
        "billing.double_charge", 0.87, session)
    # The id as Dialogflow gave it, unless it holds a card number.
    assert said["id"] == stored_id(client, body["detectIntentResponseId"])
    assert brief["facts"]["order_number"]["value"] == "A-1001"
    assert brief["facts"]["order_number"]["channel"] == "chat"
    identities = {(i["kind"], i["value"]): i["verified"] for i in brief["customer"]["identities"]}
    assert identities[("chat", session)] is False
    assert identities[("email", "ana@example.com")] is False  # a claim, never a verification
    assert brief["verifications"] == []
    assert [j["conversation_id"] for j in brief["journey"]] == [session]


async def test_a_retried_webhook_appends_nothing_twice(client: Client, keys: Keys) -> None:
    session, body = webhook(messages=("Which card?",))
    for _ in range(3):
        await post(client, keys, body)
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [t["text"] for t in brief["turns"]] == [body["text"], "Which card?"]


async def test_the_next_turn_of_the_same_session_joins_the_same_conversation(
        client: Client, keys: Keys) -> None:
    session, first = webhook("I was charged twice", messages=("Which order?",))
    await post(client, keys, first)
    _, second = webhook("A-1001", session=session, parameters={"order_number": "A-1001"})
    await post(client, keys, second)
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [t["text"] for t in brief["turns"]] == ["I was charged twice", "Which order?",
                                                   "A-1001"]
    assert brief["facts"]["order_number"]["value"] == "A-1001"


async def test_the_handoff_tag_queues_a_handoff_and_tells_the_customer_the_code(
        client: Client, keys: Keys) -> None:
    session, body = webhook("I want to talk to a person", tag="handoff", parameters={
        "handoff_queue": "billing", "handoff_priority": 2,
        "handoff_summary": "Charged twice for order A-1001", "order_number": "A-1001"})
    answer = await post(client, keys, body)
    params = answer["sessionInfo"]["parameters"]
    code = params["handoff_code"]
    assert re.fullmatch(r"\d{6}", code) and params["handoff_id"].startswith("ho_")
    [message] = answer["fulfillmentResponse"]["messages"]
    assert code in message["text"]["text"][0]
    assert answer["fulfillmentResponse"]["mergeBehavior"] == "APPEND"
    brief = await brief_of(client, keys, f"chat:{session}")
    [handoff] = brief["handoffs"]
    assert (handoff["id"], handoff["queue"], handoff["priority"], handoff["status"]) == (
        params["handoff_id"], "billing", 2, "pending")
    assert handoff["summary"] == "Charged twice for order A-1001"
    assert handoff["intent"] == "billing.double_charge"
    assert "handoff_queue" not in brief["facts"]  # hand-off controls are not facts

    # Dialogflow retries: the same call answers the same hand-off, and queues nothing new.
    assert (await post(client, keys, body))["sessionInfo"]["parameters"] == params
    queue = await ok(client, "GET", "/v1/handoffs?queue=billing", keys("agent"))
    assert [h["id"] for h in queue["items"]] == [params["handoff_id"]]

    # The customer calls and types the code: the call joins the chat's customer.
    joined = await ok(client, "POST", f"/v1/continuations/{code}/redeem", keys("ivr"), {
        "customer": phone_customer("+15550104477"), "conversation_id": "CA-dfcx",
        "channel": "voice", "source": "acme-ivr"})
    assert joined["handoff_id"] == params["handoff_id"]
    assert (await brief_of(client, keys, "phone:+15550104477"))["customer"]["id"] == \
        brief["customer"]["id"]


def shape(value: Any, at: str = "") -> set[str]:
    """The paths to a document's leaves, lists as `[]`, session parameters as `*`."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in shape(
            v, f"{at}.{'*' if at.endswith('parameters') else k}".lstrip("."))}
    if isinstance(value, list):
        return {p for v in value for p in shape(v, f"{at}[]")}
    return {at}


def camel(value: Any) -> Any:
    """Google's samples write proto field names in snake_case; the REST reference and JSON
    parsing accept lowerCamelCase, which is what handoff answers with."""
    if isinstance(value, dict):
        return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): camel(v)
                for k, v in value.items()}
    return [camel(v) for v in value] if isinstance(value, list) else value


async def test_the_answer_has_the_shape_of_googles_published_webhook_responses(
        client: Client, keys: Keys) -> None:
    _, body = webhook("Can I talk to a person?", tag="handoff")
    answer = shape(await post(client, keys, body))
    for published in ("webhook-response", "webhook-response-session-params"):
        assert shape(camel(sample(published))) <= answer, published


async def test_the_handoff_tag_is_configurable(make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(dialogflow_handoff_tags=["escalate"])
    session, body = webhook(tag="handoff")
    assert await post(client, keys, body) == {}
    _, escalated = webhook(session=session, tag="escalate")
    assert (await post(client, keys, escalated))["sessionInfo"]["parameters"]["handoff_id"]


async def test_a_live_agent_handoff_message_asks_for_a_human_with_its_metadata(
        client: Client, keys: Keys) -> None:
    session, body = webhook("agent please", tag="other")
    body["messages"] = [{"text": {"text": ["Transferring you now."]}},
                        {"liveAgentHandoff": {"metadata": {"handoff_queue": "vip"}}}]
    answer = await post(client, keys, body)
    assert answer["sessionInfo"]["parameters"]["handoff_status"] == "pending"
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [h["queue"] for h in brief["handoffs"]] == ["vip"]
    assert brief["turns"][-1]["text"] == "Transferring you now."


async def test_form_parameters_are_facts_unless_marked_invalid(client: Client,
                                                               keys: Keys) -> None:
    session, body = webhook("my line is 5105105100")
    form = sample("webhook-request-form-params")
    body["pageInfo"]["formInfo"] = copy.deepcopy(form["pageInfo"]["formInfo"])
    body["pageInfo"]["formInfo"]["parameterInfo"].append(
        {"displayName": "orderNumber", "required": True, "state": "INVALID", "value": 123})
    await post(client, keys, body)
    facts = (await brief_of(client, keys, f"chat:{session}"))["facts"]
    assert facts["phone_number"]["value"] == "5105105100"
    assert "orderNumber" not in facts


async def test_speech_on_the_phone_gateway_is_a_voice_turn_of_the_caller(
        client: Client, keys: Keys) -> None:
    _, body = webhook()
    del body["text"]
    body["transcript"] = "I need to change my address"
    body["payload"] = {"telephony": {"caller_id": "+15550107001"}}
    await post(client, keys, body)
    brief = await brief_of(client, keys, "phone:+15550107001")
    assert [(t["channel"], t["text"]) for t in brief["turns"]] == [
        ("voice", "I need to change my address")]


# -- bad payloads: 4xx problem+json, nothing changes ---------------------------------------------

def partial_form_sample() -> Json:
    return sample("webhook-request-form-params")


def number_text() -> Json:
    _, body = webhook()
    body["text"] = 42
    return body


def bad_priority() -> Json:
    _, body = webhook(tag="handoff", parameters={"handoff_priority": "urgent"})
    return body


def bad_parameter_name() -> Json:
    _, body = webhook(parameters={"9 lives": "yes"})
    return body


def messages_not_a_list() -> Json:
    _, body = webhook()
    body["messages"] = "hello"
    return body


def control_characters_in_session() -> Json:
    _, body = webhook()
    body["sessionInfo"]["session"] = "projects/p/sessions/a\nb"
    return body


UNMAPPABLE = {  # body, a vendor field the problem names
    "the partial form sample has no session": (partial_form_sample, "sessionInfo.session"),
    "text is a number": (number_text, "text"),
    "a priority that is a word": (bad_priority, "sessionInfo.parameters"),
    "a parameter name that cannot be a fact": (bad_parameter_name,
                                               "sessionInfo.parameters.9 lives"),
    "messages is not a list": (messages_not_a_list, "messages"),
    "a session id with a newline": (control_characters_in_session, "sessionInfo.session"),
}


@pytest.mark.parametrize(("make", "field"), UNMAPPABLE.values(), ids=UNMAPPABLE.keys())
async def test_a_request_that_cannot_be_mapped_is_422_naming_the_field_and_changes_nothing(
        make: Any, field: str, client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await post(client, keys, webhook()[1])  # something to leave alone
    before = snapshot(redis_sync)
    problem = assert_problem(await call(client, "POST", URL, headers=keys("bot"),
                                        json_body=make()), 422)
    assert any(e["loc"][0] == field for e in problem["errors"]), problem
    assert_unchanged(before, snapshot(redis_sync))


RAW = {"garbage": (b"\x00not json{", "application/json", 400),
       "a JSON array": (b"[]", "application/json", 422),
       "a form": (b"text=hi", "application/x-www-form-urlencoded", 415),
       "nothing": (b"", "application/json", 422)}


@pytest.mark.parametrize(("raw", "ctype", "status"), RAW.values(), ids=RAW.keys())
async def test_a_body_that_is_not_a_webhook_request_is_refused_and_changes_nothing(
        raw: bytes, ctype: str, status: int, client: Client, keys: Keys,
        redis_sync: redis.Redis) -> None:
    await refuses_raw_body(client, redis_sync, URL, keys("bot"), raw, ctype, status)


# -- who may call it ----------------------------------------------------------------------------

async def test_only_bot_keys_may_post_and_a_missing_key_is_401(client: Client, keys: Keys,
                                                               redis_sync: redis.Redis) -> None:
    _, body = webhook()
    await only_role_may_post(client, redis_sync, keys, URL, body, "bot")


async def test_the_key_may_be_the_password_of_the_webhooks_basic_auth(
        client: Client, keys: Keys) -> None:
    session, body = webhook()
    secret = keys("bot")["Authorization"].removeprefix("Bearer ")
    basic = base64.b64encode(f"dialogflow:{secret}".encode()).decode()
    answer = await call(client, "POST", URL, headers={"Authorization": f"Basic {basic}"},
                        json_body=body)
    assert answer.status == 200
    assert (await brief_of(client, keys, f"chat:{session}"))["turns"]


async def test_another_tenants_bot_with_the_same_session_writes_only_its_own_customer(
        client: Client, keys: Keys) -> None:
    session, body = webhook("acme's customer")
    await post(client, keys, body)
    acme = await brief_of(client, keys, f"chat:{session}")
    _, theirs = webhook("globex's customer", session=session)
    await post(client, keys, theirs, tenant="globex")
    assert await brief_of(client, keys, f"chat:{session}") == acme
    globex = await brief_of(client, keys, f"chat:{session}", tenant="globex")
    assert [t["text"] for t in globex["turns"]] == ["globex's customer"]
    assert_problem(await call(client, "GET", f"/v1/customers/{acme['customer']['id']}/context",
                              headers=keys("agent", "globex")), 404)


async def test_the_openapi_document_lists_the_webhook_for_bot_keys(client: Client) -> None:
    document = (await call(client, "GET", "/openapi.json")).json()
    operation = document["paths"][URL]["post"]
    assert operation["description"] == "Roles: bot"


async def test_a_session_id_that_reads_like_a_card_number_still_names_the_customer(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    session, body = webhook(session=card_like_session(), parameters={"order_number": "A-1002"})
    await post(client, keys, body)
    brief = await brief_of(client, keys, f"chat:{session}")
    [said] = brief["turns"]
    assert said["conversation_id"].startswith("id-")  # stored under a digest
    assert brief["facts"]["order_number"]["value"] == "A-1002"
    assert session not in everything(redis_sync)
