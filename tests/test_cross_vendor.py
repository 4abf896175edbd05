"""One customer across three vendors, each speaking its own format.

A customer chats with a Dialogflow CX agent about a double charge and asks for a person; the bot
hands off and gives them a continuation code. They call the Twilio number, type the code at the
`<Gather>` prompt, and the call is transferred to an Amazon Connect contact flow, which checks
their PIN and verifies the account. The agent who accepts the hand-off sees all of it in one brief
without asking for anything again.

Payloads are the vendors' published samples (tests/vendor_samples, SOURCES.md) with their values
varied, as in each adapter's own tests:
- Dialogflow CX WebhookRequest/WebhookResponse:
  https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookRequest
- Twilio voice webhooks and <Gather>: https://www.twilio.com/docs/usage/webhooks/voice-webhooks,
  https://www.twilio.com/docs/voice/twiml/gather
- Amazon Connect contact-flow Lambda event:
  https://docs.aws.amazon.com/connect/latest/adminguide/connect-lambda-functions.html
"""

from __future__ import annotations

import random
from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.adapter_checks import stored_id
from tests.conftest import AppFactory, Keys
from tests.scenario import brief_of, ok
from tests.test_adapter_amazon_connect import event, flow
from tests.test_adapter_dialogflow_cx import URL as DIALOGFLOW
from tests.test_adapter_dialogflow_cx import webhook
from tests.test_adapter_twilio_voice import (
    GATHER,
    TOKEN,
    VOICE,
    basic,
    new_call,
    post,
    sample,
    twiml,
    vary,
)

CONNECT_NUMBER = "+18005550100"


async def test_a_chat_handed_off_to_a_call_verified_in_connect_reaches_the_agent_whole(
        make_client: AppFactory, keys: Keys) -> None:
    service: TestClient[Any, Any] = await make_client(
        twilio_auth_tokens={"acme": SecretStr(TOKEN)}, twilio_join=f"dial:{CONNECT_NUMBER}")
    order = f"A-{random.randint(1000, 9999)}"
    account = str(random.randint(10_000_000, 99_999_999))

    # 1. Dialogflow CX: the customer explains, the bot answers, then the hand-off tag fires.
    session, said = webhook(f"I was charged twice for order {order}",
                            parameters={"order_number": order},
                            messages=("Sorry to hear that. Which card was it?",))
    await ok(service, "POST", DIALOGFLOW, keys("bot"), said)
    _, asked = webhook("I want to talk to a person", session=session, tag="handoff", parameters={
        "order_number": order, "handoff_queue": "billing", "handoff_priority": 2,
        "handoff_summary": f"Charged twice for order {order}"})
    answer = await ok(service, "POST", DIALOGFLOW, keys("bot"), asked)
    code = answer["sessionInfo"]["parameters"]["handoff_code"]
    handoff_id = answer["sessionInfo"]["parameters"]["handoff_id"]

    # 2. Twilio: the customer calls and types the code; the call is put through to Connect.
    sid, phone = new_call()
    twiml(await post(service, VOICE, vary(sample("twilio-voice-incoming.form"),
                                          CallSid=sid, From=phone), basic(keys)))
    joined = twiml(await post(service, GATHER + "?attempt=1", vary(
        sample("twilio-gather-digits.form"), CallSid=sid, From=phone, Caller=phone,
        Digits=code), basic(keys)))
    assert joined.findtext("Dial/Number") == CONNECT_NUMBER

    # 3. Amazon Connect: the transferred call is recognised, then the flow checks the PIN.
    arrived = event(phone=phone, operation="identify")
    contact = arrived["Details"]["ContactData"]["ContactId"]
    known = await flow(service, keys, arrived)
    assert known["returning"] == "true" and known["handoff_id"] == handoff_id
    proved = await flow(service, keys, event(phone=phone, contact=contact, operation="verify",
                                             account=account, method="pin", level="high"))
    assert proved["verified"] == "true" and proved["customer_id"] == known["customer_id"]

    # 4. The agent takes the hand-off and has everything in one answer.
    queue = await ok(service, "GET", "/v1/handoffs?queue=billing", keys("agent"))
    assert [h["id"] for h in queue["items"]] == [handoff_id]
    accepted = await ok(service, "POST", f"/v1/handoffs/{handoff_id}/accept", keys("agent"),
                        {"agent_id": "agent-7"})
    brief = accepted["context"]
    assert brief["customer"]["id"] == known["customer_id"]
    assert [(j["channel"], j["conversation_id"]) for j in brief["journey"]] == [
        ("chat", session), ("voice", stored_id(service, sid)),
        ("voice", stored_id(service, contact))]
    (proof,) = brief["verifications"]
    assert (proof["identity"], proof["method"], proof["level"], proof["channel"]) == (
        {"kind": "account", "value": account}, "pin", "high", "voice")
    assert brief["facts"]["order_number"]["value"] == order
    assert brief["facts"]["order_number"]["channel"] == "chat"
    assert {"account", "order_number", "phone"} <= set(brief["do_not_ask"])
    spoken = [(t["channel"], t["role"], t["text"]) for t in brief["turns"]]
    assert ("chat", "customer", f"I was charged twice for order {order}") in spoken
    assert ("chat", "bot", "Sorry to hear that. Which card was it?") in spoken
    assert ("voice", "customer", code) in spoken
    assert brief["summary"] == f"Charged twice for order {order}"
    assert accepted["handoff"]["status"] == "accepted"
    assert accepted["panel_url"]

    # Every channel's identity now opens the same brief.
    for ref in (f"chat:{session}", f"phone:{phone}", f"account:{account}"):
        assert (await brief_of(service, keys, ref))["customer"]["id"] == known["customer_id"]
