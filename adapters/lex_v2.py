"""Amazon Lex V2 code hooks: the Lambda input event, forwarded as-is by a few-line Lambda.

The customer's utterance becomes a turn with the recognised intent, filled slots and session
attributes become facts, and the configured hand-off intent (or the `handoff_request` session
attribute) asks for a human. The answer is a Lex V2 Lambda response: Delegate, or Close with the
continuation code. Formats: https://docs.aws.amazon.com/lexv2/latest/dg/lambda-input-format.html
and .../lambda-response-format.html; `docs/adapters/lex-v2.md` has the forwarding Lambda.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters import conventions as c
from adapters.base import Adapter, Core, build
from handoff.api.bodies import parse, render
from handoff.api.routing import Routes
from handoff.api.state import SETTINGS
from schemas.conversations import FactValue, TurnIn
from schemas.handoffs import Handoff, HandoffIn
from schemas.vendors.lex_v2 import Intent, LexEvent, LexResponse, Message, ResponseState, Slot

NAME = "lex-v2"
# Lex says how the customer spoke: a call (Amazon Connect, a phone integration) or a chat.
VOICE_MODES = frozenset({"Speech", "DTMF"})
routes = Routes()


@routes.route("POST", f"/v1/adapters/{NAME}/code-hook", roles=("bot",), body=LexEvent,
              response=LexResponse,
              summary="Amazon Lex V2 code hook: turns, slots as facts, a hand-off intent")
async def code_hook(request: web.Request) -> web.StreamResponse:
    event = await parse(request, LexEvent)
    core = Core(request)
    visitor, session = c.session(core, event.sessionId, where="sessionId")
    state = event.sessionState
    attributes = state.sessionAttributes or {}
    intent = state.intent
    channel = "voice" if event.inputMode in VOICE_MODES else "chat"
    caller = attributes.get("handoff_caller")
    if channel == "voice" and caller and not core.claimable("phone", caller):
        caller = None
    slots = slot_values(intent)
    customer, ref = c.party(core, visitor, channel, caller, [*attributes.items(), *slots.items()])
    known: dict[str, FactValue] = {
        **c.facts(attributes.items(), where="sessionState.sessionAttributes"),
        **c.facts(slots.items(), where="sessionState.intent.slots")}
    # Lex gives no id per utterance; the originating request id and the words are stable
    # across a retried invocation of the same hook.
    turn_id = "lex-" + core.digest(session, state.originatingRequestId, event.inputTranscript,
                                   intent.name if intent else None)
    said = turns(core, event, turn_id, slots)
    # Everything is mapped (and refused) before anything is written.
    ask = build(HandoffIn, {
        "customer": customer, "conversation_id": session, "channel": channel,
        "source": NAME, "reason": "customer_request", "continuation": True,
        "intent": intent.name if intent else None, **c.handoff_fields(attributes)},
        where="sessionState.sessionAttributes") \
        if asks_for_human(event, request.app[SETTINGS].lex_handoff_intents) else None
    written = await c.record(core, session, customer=customer, channel=channel, source=NAME,
                             turns=said, known=known, ref=ref, where="sessionState")
    handoff = None
    if ask is not None:
        # One hand-off per utterance: a retried invocation answers the first hand-off again.
        handoff, _ = await core.request_handoff(ask, f"{NAME}:{turn_id}")
    # After an agent handed the customer back, the bot reads the agent's note as the session
    # attribute `last_human_note` (and outcome, agent) from its next turn on.
    contact = (c.human_contact(await core.last_human_contact(written.customer_id))
               if written is not None else {})
    answer = respond(event, handoff, contact)
    return render(request, answer.model_dump(mode="json", exclude_none=True))


def slot_values(intent: Intent | None) -> dict[str, Any]:
    """Filled slots by name: the interpreted value, a list slot's values joined by commas."""
    found: dict[str, Any] = {}
    for name, slot in ((intent.slots if intent else None) or {}).items():
        value = interpreted(slot)
        if value:
            found[name] = value
    return found


def interpreted(slot: Slot | None) -> str | None:
    if slot is None:
        return None
    if slot.values:
        parts = [v for v in (interpreted(s) for s in slot.values) if v]
        return ", ".join(parts) or None
    if slot.value is None:
        return None
    return slot.value.interpretedValue or slot.value.originalValue


def turns(core: Core, event: LexEvent, turn_id: str, slots: dict[str, Any]) -> list[TurnIn]:
    """The customer's utterance with the intent Lex chose and its confidence."""
    if not event.inputTranscript:
        return []
    intent = event.sessionState.intent
    confidence = next((i.nluConfidence for i in event.interpretations
                       if intent and i.intent and i.intent.name == intent.name), None)
    return [c.turn(turn_id, "customer", event.inputTranscript, core.now(),
                   where="inputTranscript", intent=intent.name if intent else None,
                   confidence=confidence, entities=slots or None)]


def asks_for_human(event: LexEvent, intents: list[str]) -> bool:
    """The hand-off intent once Lex has all it needs, or the bot's own request, once a session.

    The attribute stays set for the rest of the session, so it asks only while the session has
    no hand-off yet; the intent asks every time it is fulfilled.
    """
    state = event.sessionState
    intent = state.intent
    if intent and intent.name in intents and (
            event.invocationSource == "FulfillmentCodeHook"
            or intent.state == "ReadyForFulfillment"):
        return True
    attributes = state.sessionAttributes or {}
    return c.truthy(attributes.get("handoff_request")) and "handoff_id" not in attributes


def respond(event: LexEvent, handoff: Handoff | None,
            contact: dict[str, str] | None = None) -> LexResponse:
    """The session state echoed (Lex replaces its own with it) with the last human contact
    added; Delegate lets Lex go on, Close ends the bot's part with the continuation code."""
    state = event.sessionState
    attributes = {**(state.sessionAttributes or {}), **(contact or {})}
    intent = state.intent.model_dump(mode="json", exclude_unset=True) if state.intent else None
    echoed = state.model_dump(mode="json", exclude_unset=True,
                              exclude={"dialogAction", "intent", "sessionAttributes"})
    if handoff is None:
        return LexResponse(sessionState=ResponseState(
            dialogAction={"type": "Delegate"}, sessionAttributes=attributes, intent=intent,
            **echoed))
    attributes |= {"handoff_id": handoff.id, "handoff_status": handoff.status}
    text = "A colleague will take over from here."
    if handoff.continuation_code:
        attributes["handoff_code"] = handoff.continuation_code
        text += (f" If we get cut off, call us and enter {handoff.continuation_code}"
                 " to pick up where we left off.")
    if intent is not None:
        intent["state"] = "Fulfilled"
    return LexResponse(
        sessionState=ResponseState(dialogAction={"type": "Close"}, sessionAttributes=attributes,
                                   intent=intent, **echoed),
        messages=[Message(contentType="PlainText", content=text)])


adapter = Adapter(name=NAME, routes=routes,
                  summary="Amazon Lex V2 code hooks: utterances, slots as facts, hand-offs")
