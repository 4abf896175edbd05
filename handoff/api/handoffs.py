"""Hand-off requests, the agents' queue, and the lifecycle."""

from __future__ import annotations

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import parse, render
from handoff.api.desk import panel_url, token_for
from handoff.api.remote import client_address
from handoff.api.routing import Query, Routes
from handoff.api.state import DEPS, PRINCIPAL
from handoff.kernel import metrics
from handoff.kernel.errors import Forbidden, Unprocessable
from handoff.services import audit, brief, handoffs
from schemas.brief import AcceptResult
from schemas.common import Page
from schemas.handoffs import (
    HANDOFF_STATUSES,
    AcceptIn,
    CancelIn,
    HandBackIn,
    Handoff,
    HandoffIn,
    ResolveIn,
)

routes = Routes()
IDEMPOTENCY = Query("Idempotency-Key", "a retry with the same key answers the first hand-off")


@routes.route("POST", "/v1/handoffs", roles=("bot", "ivr"), status=201,
              summary="Request a hand-off to a human; Idempotency-Key honoured",
              body=HandoffIn, response=Handoff, headers=(IDEMPOTENCY,))
async def create(request: web.Request) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not params.NAME.match(key):
        raise Unprocessable("Idempotency-Key must be 1 to 128 printable characters",
                            [{"loc": ["header", "Idempotency-Key"], "msg": "invalid"}])
    body = await parse(request, HandoffIn)
    record, new = await handoffs.create(request.app[DEPS], request[PRINCIPAL], body, key)
    headers = {"Location": f"/v1/handoffs/{record.id}"}
    if not new:
        headers["Idempotent-Replayed"] = "true"
    return render(request, record, status=201, headers=headers)


@routes.route("GET", "/v1/handoffs", roles=("agent", "supervisor"), response=Page[Handoff],
              desk=True,
              summary="The queue: most urgent first (priority 1), then oldest first",
              query=(Query("queue", "one queue; all queues when absent", params.SLUG_SCHEMA),
                     Query("status", "pending (default), accepted, resolved, cancelled, "
                                     "expired, handed_back",
                           {"type": "string", "enum": list(HANDOFF_STATUSES)}),
                     Query("before", "the `next` of the previous page", params.NAME_SCHEMA),
                     Query("limit", "page size (default 50, at most 500)",
                           {"type": "integer", "minimum": 1, "maximum": 500})))
async def listing(request: web.Request) -> web.StreamResponse:
    page = await handoffs.listing(
        request.app[DEPS], request[PRINCIPAL],
        status=params.choice(request, "status", HANDOFF_STATUSES, "pending"),
        queue=params.slug(request, "queue"), before=params.cursor(request),
        limit=params.integer(request, "limit", default=50, low=1, high=500))
    return render(request, page)


@routes.route("GET", "/v1/handoffs/{id}", roles=("bot", "ivr", "agent"), response=Handoff,
              desk=True,
              summary="One hand-off")
async def get_one(request: web.Request) -> web.StreamResponse:
    return render(request, await handoffs.get(request.app[DEPS], request[PRINCIPAL],
                                              request.match_info["id"]))


@routes.route("POST", "/v1/handoffs/{id}/accept", roles=("agent",), body=AcceptIn,
              response=AcceptResult, desk=True,
              summary="Claim a hand-off atomically: 200 with the brief, 409 if taken")
async def accept(request: web.Request) -> web.StreamResponse:
    deps, principal = request.app[DEPS], request[PRINCIPAL]
    # A card-like agent id is held, compared, audited and signed into the panel token digested.
    body = deps.privacy.safe_ids(await parse(request, AcceptIn), "agent_id")
    if principal.desk and body.agent_id != principal.agent_id:
        raise Forbidden(f"this panel is signed in for {principal.agent_id}")
    record, context, tag = await brief.accepted(
        deps, principal, request.match_info["id"], body.agent_id,
        audit.Viewer(agent_id=body.agent_id, address=client_address(request)))
    token, _ = token_for(request, principal, body.agent_id)
    response = render(request, AcceptResult(handoff=record, context=context,
                                            panel_url=panel_url(request, token, record.id)),
                      headers={"ETag": tag})
    metrics.brief(response.content_length or 0, len(context.turns))
    return response


@routes.route("POST", "/v1/handoffs/{id}/resolve", roles=("agent",), body=ResolveIn,
              body_optional=True, response=Handoff, desk=True,
              summary="Close a hand-off as resolved")
async def resolve(request: web.Request) -> web.StreamResponse:
    principal = request[PRINCIPAL]
    body = await parse(request, ResolveIn, optional=True)
    # A panel resolves as its own agent, whatever the body says.
    agent_id = principal.agent_id or body.agent_id
    record = await handoffs.resolve(request.app[DEPS], principal, request.match_info["id"],
                                    agent_id, body.note)
    return render(request, record)


@routes.route("POST", "/v1/handoffs/{id}/hand-back", roles=("agent",), body=HandBackIn,
              response=Handoff, desk=True,
              summary="Give the customer back to the bot (or a queue) with a note")
async def hand_back(request: web.Request) -> web.StreamResponse:
    body = await parse(request, HandBackIn)
    record = await handoffs.hand_back(request.app[DEPS], request[PRINCIPAL],
                                      request.match_info["id"], body)
    return render(request, record)


@routes.route("POST", "/v1/handoffs/{id}/cancel", roles=("bot", "ivr"), body=CancelIn,
              body_optional=True, response=Handoff,
              summary="Withdraw a hand-off no agent has taken yet")
async def cancel(request: web.Request) -> web.StreamResponse:
    body = await parse(request, CancelIn, optional=True)
    record = await handoffs.cancel(request.app[DEPS], request[PRINCIPAL],
                                   request.match_info["id"], body.note)
    return render(request, record)
