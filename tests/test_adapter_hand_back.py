"""After an agent hands the customer back, each bot platform's next turn is answered with the
agent's note where the platform keeps per-session data: Dialogflow CX session parameters, Lex V2
session attributes, a Rasa slot."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests import test_adapter_dialogflow_cx as dialogflow
from tests import test_adapter_lex_v2 as lex
from tests import test_adapter_rasa as rasa
from tests.conftest import Keys
from tests.scenario import ok

Client = TestClient[Any, Any]
NOTE = "Refund re-issued; it arrives within 3 working days."
CONTACT = {"last_human_note": NOTE, "last_human_outcome": "resolved",
           "last_human_agent": "agent-7", "last_human_to": "bot"}


async def agent_hands_back(client: Client, keys: Keys, ref: str) -> str:
    """The bot asks for a person for customer `ref`; agent-7 takes it and hands it back."""
    made = await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": {"identities": [{"kind": "chat", "value": ref}]},
        "conversation_id": ref, "channel": "chat", "reason": "customer_request"}, status=201)
    await ok(client, "POST", f"/v1/handoffs/{made['id']}/accept", keys("agent"),
             {"agent_id": "agent-7"})
    await ok(client, "POST", f"/v1/handoffs/{made['id']}/hand-back", keys("agent"),
             {"note": NOTE, "to": "bot", "outcome": "resolved"})
    handoff_id: str = made["id"]
    return handoff_id


async def test_dialogflow_cx_gets_the_note_as_session_parameters_on_its_next_turn(
        client: Client, keys: Keys) -> None:
    session, first = dialogflow.webhook("I was charged twice", tag="")
    assert await dialogflow.post(client, keys, first) == {}
    handoff_id = await agent_hands_back(client, keys, session)
    _, second = dialogflow.webhook("thanks, anything else?", session=session, tag="")
    answer = await dialogflow.post(client, keys, second)
    assert answer == {"sessionInfo": {"parameters": {
        **CONTACT, "last_human_handoff_id": handoff_id}}}


async def test_lex_gets_the_note_as_session_attributes_on_its_next_turn(
        client: Client, keys: Keys) -> None:
    session, first = lex.event(transcript="I was charged twice")
    await lex.post(client, keys, first)
    handoff_id = await agent_hands_back(client, keys, session)
    _, second = lex.event(transcript="thanks", attributes={"order_number": "A-1001"})
    second["sessionId"] = session
    answer = await lex.post(client, keys, second)
    assert answer["sessionState"]["dialogAction"] == {"type": "Delegate"}
    assert answer["sessionState"]["sessionAttributes"] == {
        "order_number": "A-1001", **CONTACT, "last_human_handoff_id": handoff_id}


async def test_rasa_gets_the_note_as_slots_to_set(client: Client, keys: Keys) -> None:
    sender = f"rasa-{uuid.uuid4().hex[:10]}"
    _, events = rasa.broker_events(sender)
    before = await ok(client, "POST", rasa.URL, keys("bot"), events)
    assert before["conversations"][0].get("slots") is None
    handoff_id = await agent_hands_back(client, keys, sender)
    _, again = rasa.broker_events(sender)
    after = await ok(client, "POST", rasa.URL, keys("bot"), again)
    assert after["conversations"][0]["slots"] == {**CONTACT,
                                                  "last_human_handoff_id": handoff_id}
