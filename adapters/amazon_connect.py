"""Amazon Connect: contact-flow Lambda events, forwarded as-is, answered with a flat string map.

A few-line Lambda (docs/adapters/amazon-connect.md) posts the event Connect gives it, with a
handoff `ivr` key, and returns our answer to the flow. `Details.Parameters.operation` says what
to do: `identify` (the default) records the contact and answers what is known, `verify` records
that the flow itself checked a PIN, `redeem` joins the contact to a continuation code's
customer, `handoff` asks for a human, `turn` records something said.

The contact chain is the conversation: `InitialContactId` (falling back to `PreviousContactId`,
then `ContactId`), so a transferred leg stays in the same conversation of the same customer even
when there is no caller number to recognise it by. Each leg's own `ContactId` names its turns.

Connect requires a flat object of string values "that include only alphanumeric, dash, and
underscore characters", under 32 KB; every answer is reduced to that. A caller's mistake (a
wrong code) is a `result` value the flow branches on; a payload that cannot be mapped is a 422,
which the Lambda turns into the block's Error branch.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from aiohttp import web

from adapters.base import PREFIX, Adapter, Core, build
from handoff.api import bodies
from handoff.api.routing import Routes
from handoff.api.state import SETTINGS
from handoff.kernel.errors import NotFound, TooManyRequests, Unprocessable
from handoff.kernel.settings import Settings
from schemas.conversations import AppendResult, AppendTurns
from schemas.handoffs import HandoffIn, RedeemIn
from schemas.vendors.amazon_connect import Contact, ContactFlowEvent
from schemas.verification import VerifyIn

NAME = "amazon-connect"
SOURCE = "amazon-connect"
CHANNELS = {"VOICE": "voice", "CHAT": "chat", "TASK": "other", "EMAIL": "email"}
PARAMS = "Details.Parameters"
# Connect's rule for what a Lambda answers: keys and values of these characters only.
KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_ANSWER_BYTES = 32 * 1024
FACT_PREFIX = "fact_"

routes = Routes()


class Call:
    """One Lambda invocation: the contact it is about and the flow's parameters."""

    def __init__(self, core: Core, settings: Settings, event: ContactFlowEvent) -> None:
        self.core, self.settings = core, settings
        self.contact: Contact = event.Details.ContactData
        self.params = event.Details.Parameters
        c = self.contact
        self.conversation = core.vendor_id(
            c.InitialContactId or c.PreviousContactId or c.ContactId)
        self.leg = core.vendor_id(c.ContactId)
        self.channel = CHANNELS.get(c.Channel.upper(), "other")

    def param(self, name: str, default: str | None = None) -> str:
        value = (self.params.get(name) or "").strip() or default
        if value is None:
            raise Unprocessable(f"operation {self.params.get('operation')} needs {name}",
                                [{"loc": [*PARAMS.split("."), name], "msg": "required"}])
        return value

    def customer(self, *claims: dict[str, str]) -> dict[str, Any] | None:
        """The caller's number on a phone contact (linked), plus any claims."""
        identities = list(claims)
        endpoint = self.contact.CustomerEndpoint
        if (self.channel == "voice" and endpoint is not None and endpoint.Address
                and endpoint.Type == "TELEPHONE_NUMBER"
                and self.core.claimable("phone", endpoint.Address)):
            identities.insert(0, {"kind": "phone", "value": endpoint.Address})
        return {"identities": identities} if identities else None

    async def record(self, step: str, text: str, *, role: str = "system",
                     claims: tuple[dict[str, str], ...] = (), facts: dict[str, str] | None = None,
                     intent: str | None = None) -> AppendResult:
        """Append one turn of this leg; a retried invocation of the same step adds nothing."""
        turn: dict[str, Any] = {"id": f"connect:{self.leg}:{step}"[:128],
                                "role": role, "text": text, "ts": self.core.now()}
        if intent:
            turn["intent"] = intent
        body = build(AppendTurns, {"customer": self.customer(*claims), "channel": self.channel,
                                   "source": SOURCE, "turns": [turn], "facts": facts or None},
                     where=PARAMS)
        return await self.core.append_turns(self.conversation, body)

    async def known(self, customer_id: str) -> dict[str, str]:
        """What the flow may branch on: verified on this contact, an open hand-off, a code."""
        brief = await self.core.standing(customer_id)
        here = [v for v in brief.verifications
                if not v.expired and v.conversation_id == self.conversation]
        open_ = next((h for h in brief.handoffs if h.status in ("pending", "accepted")), None)
        answer = {"customer_id": brief.customer.id,
                  "verified": _bool(bool(here)),
                  "returning": _bool(any(j.conversation_id != self.conversation
                                         for j in brief.journey)),
                  "code_digits": str(self.settings.continuation_digits)}
        if here:
            answer["verified_level"] = here[0].level
            answer["verified_kind"] = here[0].identity.kind
        if open_ is not None:
            answer |= {"handoff_id": open_.id, "handoff_status": open_.status,
                       "handoff_queue": open_.queue}
        return answer


@routes.route("POST", f"{PREFIX}{NAME}/contact-flow", roles=("ivr",), body=ContactFlowEvent,
              summary="Amazon Connect contact-flow event (from a forwarding Lambda): identify, "
                      "verify, redeem, handoff or turn; answers Connect's flat string map")
async def contact_flow(request: web.Request) -> web.Response:
    event = await bodies.parse(request, ContactFlowEvent)
    call = Call(Core(request), request.app[SETTINGS], event)
    operation = call.param("operation", "identify")
    run = OPERATIONS.get(operation)
    if run is None:
        raise Unprocessable(f"unknown operation {operation[:40]!r}",
                            [{"loc": [*PARAMS.split("."), "operation"],
                              "msg": f"one of {', '.join(OPERATIONS)}"}])
    return web.json_response(flat({"result": "ok", **await run(call)}))


async def identify(call: Call) -> dict[str, str]:
    c = call.contact
    parts = [f"{c.Channel.lower()} contact"]
    if c.SystemEndpoint is not None and c.SystemEndpoint.Address:
        parts.append(f"to {c.SystemEndpoint.Address}")
    if c.InitiationMethod:
        parts.append(f"({c.InitiationMethod.lower()})")
    if c.queue_name:
        parts.append(f"in queue {c.queue_name}")
    if call.leg != call.conversation:
        parts.append(f"as leg {call.leg}")
    account = call.params.get("account", "").strip()
    claims = ({"kind": "account", "value": account},) if account else ()
    facts = {k[len(FACT_PREFIX):]: v for k, v in call.params.items()
             if k.startswith(FACT_PREFIX) and v}
    written = await call.record("identify", "Amazon Connect " + " ".join(parts),
                                claims=claims, facts=facts)
    return await call.known(written.customer_id)


async def verify(call: Call) -> dict[str, str]:
    """Only for the flow's own success branch: the flow checked the PIN, handoff records it."""
    body: dict[str, Any] = {
        "customer": call.customer(), "conversation_id": call.conversation,
        "identity": {"kind": call.param("kind", "account"), "value": call.param("account")},
        "method": call.param("method", "pin"), "level": call.param("level", "medium"),
        "channel": call.channel, "source": SOURCE}
    if call.params.get("expires_in"):
        body["expires_in"] = call.params["expires_in"]
    result = await call.core.verify(build(VerifyIn, body, where=PARAMS))
    await call.record(f"verify-{body['identity']['kind']}",
                      f"Identity verified by {body['method']} in the contact flow")
    return {"customer_id": result.customer_id, "verified": "true",
            "verified_level": body["level"], "merged": str(len(result.merged))}


async def redeem(call: Call) -> dict[str, str]:
    code = re.sub(r"[^0-9]", "", call.param("code"))
    if len(code) != call.settings.continuation_digits:
        return {"result": "invalid_code", "code_digits": str(call.settings.continuation_digits)}
    body = build(RedeemIn, {"customer": call.customer(), "conversation_id": call.conversation,
                            "channel": call.channel, "source": SOURCE}, where=PARAMS)
    try:
        joined = await call.core.redeem(code, body)
    except NotFound:
        return {"result": "not_found"}
    except TooManyRequests as exc:
        return {"result": "locked", "retry_after": str(exc.retry_after)}
    await call.record("redeem", "Caller entered a continuation code")
    answer = {"customer_id": joined.customer_id}
    if joined.handoff_id:
        answer["handoff_id"] = joined.handoff_id
    return answer


async def handoff(call: Call) -> dict[str, str]:
    fields = {k: call.params[k] for k in ("queue", "reason", "priority", "intent", "summary")
              if call.params.get(k)}
    body = build(HandoffIn, {
        "customer": call.customer(), "conversation_id": call.conversation,
        "channel": call.channel, "source": SOURCE, "reason": "customer_request",
        **fields, "continuation": call.params.get("continuation", "").lower() == "true"},
        where=PARAMS)
    # The same request on the same leg is the same hand-off, however often the flow retries.
    wanted = json.dumps(sorted(call.params.items())).encode()
    key = f"connect:{call.leg}:{hashlib.sha256(wanted).hexdigest()[:24]}"
    created, _ = await call.core.request_handoff(body, key)
    answer = {"customer_id": created.customer_id, "handoff_id": created.id,
              "handoff_status": created.status, "handoff_queue": created.queue}
    if created.continuation_code:
        answer["continuation_code"] = created.continuation_code
    return answer


async def turn(call: Call) -> dict[str, str]:
    text, role = call.param("text"), call.param("role", "customer")
    step = call.params.get("turn_id") or call.core.digest(role, text)
    written = await call.record(f"turn-{step}", text, role=role,
                                intent=call.params.get("intent") or None)
    return {"customer_id": written.customer_id, "appended": str(written.appended)}


OPERATIONS = {"identify": identify, "verify": verify, "redeem": redeem, "handoff": handoff,
              "turn": turn}


def flat(answer: dict[str, str]) -> dict[str, str]:
    """Connect's shape: string values of letters, digits, `-` and `_` only, under 32 KB."""
    out = {k: UNSAFE.sub("_", v) for k, v in answer.items()}
    assert all(KEY.match(k) for k in out), out  # our own keys, fixed in this module
    assert len(json.dumps(out).encode()) < MAX_ANSWER_BYTES
    return out


def _bool(value: bool) -> str:
    return "true" if value else "false"


adapter = Adapter(name=NAME, routes=routes,
                  summary="Amazon Connect contact-flow Lambda events, answered as a flat map")
