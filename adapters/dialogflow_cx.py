"""Dialogflow CX webhooks: what the customer said and the agent answered becomes turns, session
and form parameters become facts, and a tagged fulfillment asks for a human.

Google documents the request and response at
https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookRequest and
.../WebhookResponse; `docs/adapters/dialogflow-cx.md` says how to point an agent at this route.
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
from schemas.vendors.dialogflow_cx import (
    FulfillmentResponse,
    OutMessage,
    OutSessionInfo,
    ResponseText,
    WebhookRequest,
    WebhookResponse,
)

NAME = "dialogflow-cx"
routes = Routes()


@routes.route("POST", f"/v1/adapters/{NAME}/webhook", roles=("bot",), body=WebhookRequest,
              response=WebhookResponse,
              summary="Dialogflow CX webhook: turns, facts, and a hand-off on a configured tag")
async def webhook(request: web.Request) -> web.StreamResponse:
    event = await parse(request, WebhookRequest)
    core = Core(request)
    visitor, session = c.session(core, session_id(event), where="sessionInfo.session")
    params = (event.sessionInfo.parameters if event.sessionInfo else None) or {}
    form = form_parameters(event)
    channel, caller = ("voice", caller_id(core, event)) if spoken(event) else ("chat", None)
    customer, ref = c.party(core, visitor, channel, caller, [*params.items(), *form])
    known: dict[str, FactValue] = {
        **c.facts(params.items(), where="sessionInfo.parameters"),
        **c.facts(form, where="pageInfo.formInfo.parameterInfo")}
    base = core.vendor_id(event.detectIntentResponseId) if event.detectIntentResponseId \
        else "dfcx-" + core.digest(
        session, event.text, event.transcript, event.dtmfDigits, event.triggerIntent,
        event.triggerEvent, tag(event))
    said = turns(core, event, base)
    # Everything is mapped (and refused) before anything is written.
    ask = (handoff_request(event, session, channel, customer, params)
           if asks_for_human(event, request.app[SETTINGS].dialogflow_handoff_tags) else None)
    written = await c.record(core, session, customer=customer, channel=channel, source=NAME,
                             turns=said, known=known, ref=ref, where="WebhookRequest")
    answer = WebhookResponse()
    if ask is not None:
        # One hand-off per webhook call: a retried call answers the first hand-off again.
        handoff, _ = await core.request_handoff(
            ask, f"{NAME}:{core.digest(session, base, tag(event))}")
        answer = handoff_response(handoff)
    if written is not None:
        # After an agent handed the customer back, the bot's flow reads the agent's note as
        # `$session.params.last_human_note` (and outcome, agent) on its next turn.
        contact = c.human_contact(await core.last_human_contact(written.customer_id))
        if contact:
            info = answer.sessionInfo or OutSessionInfo(parameters={})
            info.parameters = {**contact, **(info.parameters or {})}
            answer.sessionInfo = info
    return render(request, answer.model_dump(mode="json", exclude_none=True))


def session_id(event: WebhookRequest) -> str | None:
    """The last segment of `projects/.../sessions/<id>` (environments included)."""
    path = event.sessionInfo.session if event.sessionInfo else None
    return path.rsplit("/", 1)[-1] if path else None


def tag(event: WebhookRequest) -> str | None:
    return event.fulfillmentInfo.tag if event.fulfillmentInfo else None


def spoken(event: WebhookRequest) -> bool:
    """Speech and keypad input come from a phone call; typed text and events from chat."""
    return event.transcript is not None or event.dtmfDigits is not None


def caller_id(core: Core, event: WebhookRequest) -> str | None:
    """The caller's number as the CX phone gateway passes it (`payload.telephony.caller_id`)."""
    telephony = (event.payload or {}).get("telephony")
    number = telephony.get("caller_id") if isinstance(telephony, dict) else None
    return number if isinstance(number, str) and core.claimable("phone", number) else None


def form_parameters(event: WebhookRequest) -> list[tuple[str, Any]]:
    """Form parameters the agent has collected and not marked invalid."""
    form = event.pageInfo.formInfo if event.pageInfo else None
    return [(p.displayName, p.value) for p in (form.parameterInfo if form else [])
            if p.state != "INVALID"]


def turns(core: Core, event: WebhookRequest, base: str) -> list[TurnIn]:
    """The customer's input, then the agent's responses so far in this conversational turn.

    A webhook carries no time of its own, so every turn is stamped when it arrives; a retried
    webhook keeps its first stamp because its turn ids are already stored.
    """
    now = core.now()
    made = []
    for field in ("text", "transcript", "dtmfDigits"):
        said = getattr(event, field)
        if said:
            info = event.intentInfo
            entities = {name: c.scalar(p.resolvedValue)
                        for name, p in ((info.parameters if info else None) or {}).items()}
            made.append(c.turn(base, "customer", said, now, where=field,
                               intent=info.displayName if info else None,
                               confidence=info.confidence if info else None,
                               entities=entities or None))
            break
    for n, message in enumerate(event.messages):
        text = ("\n".join(message.text.text) if message.text else
                message.outputAudioText.text if message.outputAudioText else None)
        if text:
            made.append(c.turn(f"{base}:bot:{n}", "bot", text, now, where=f"messages.{n}"))
    return made


def asks_for_human(event: WebhookRequest, tags: list[str]) -> bool:
    return tag(event) in tags or any(m.liveAgentHandoff is not None for m in event.messages)


def handoff_request(event: WebhookRequest, session: str, channel: str,
                    customer: dict[str, Any] | None, params: dict[str, Any]) -> HandoffIn:
    """The hand-off asked for: queue, priority, reason and summary from `liveAgentHandoff`
    metadata or session parameters (`handoff_queue`, ...), the parameters winning."""
    metadata: dict[str, Any] = {}
    for message in event.messages:
        if isinstance(message.liveAgentHandoff, dict):
            found = message.liveAgentHandoff.get("metadata")
            metadata |= found if isinstance(found, dict) else {}
    return build(HandoffIn, {
        "customer": customer, "conversation_id": session, "channel": channel, "source": NAME,
        "reason": "customer_request", "continuation": True,
        "intent": event.intentInfo.displayName if event.intentInfo else None,
        **c.handoff_fields(metadata), **c.handoff_fields(params)}, where="sessionInfo.parameters")


def handoff_response(handoff: Handoff) -> WebhookResponse:
    """Tell the customer the continuation code and keep the ids as session parameters, so the
    agent's own fulfillment can use `$session.params.handoff_code` too."""
    parameters: dict[str, Any] = {"handoff_id": handoff.id, "handoff_status": handoff.status}
    text = "A colleague will take over from here."
    if handoff.continuation_code:
        parameters["handoff_code"] = handoff.continuation_code
        if handoff.continuation_expires_at:
            parameters["handoff_code_expires_at"] = handoff.continuation_expires_at.isoformat()
        text += (f" If you would rather call us, enter {handoff.continuation_code} when asked"
                 " and we will pick up where we left off.")
    return WebhookResponse(
        fulfillmentResponse=FulfillmentResponse(
            messages=[OutMessage(text=ResponseText(text=[text]))]),
        sessionInfo=OutSessionInfo(parameters=parameters))


adapter = Adapter(name=NAME, routes=routes,
                  summary="Dialogflow CX webhooks: turns, parameters as facts, tagged hand-offs")
