"""Supervisor risk alerts: the open (or acknowledged) list, and acknowledging one. Their live
stream is `GET /v1/alerts/events` (handoff.api.events)."""

from __future__ import annotations

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import parse, render
from handoff.api.routing import Query, Routes
from handoff.api.state import DEPS, PRINCIPAL
from handoff.services import alerts
from schemas.alerts import ALERT_STATUSES, AckIn, Alert
from schemas.common import Page

routes = Routes()


@routes.route("GET", "/v1/alerts", roles=("supervisor",), response=Page[Alert], desk=True,
              summary="The tenant's risk alerts of one status, newest first",
              query=(Query("status", "open (default) or acknowledged",
                           {"type": "string", "enum": list(ALERT_STATUSES)}),
                     Query("before", "the `next` of the previous page", params.NAME_SCHEMA),
                     Query("limit", "page size (default 50, at most 500)",
                           {"type": "integer", "minimum": 1, "maximum": 500})))
async def listing(request: web.Request) -> web.StreamResponse:
    page = await alerts.listing(
        request.app[DEPS], request[PRINCIPAL],
        status=params.choice(request, "status", ALERT_STATUSES, "open"),
        before=params.cursor(request),
        limit=params.integer(request, "limit", default=50, low=1, high=500))
    return render(request, page)


@routes.route("POST", "/v1/alerts/{id}/ack", roles=("supervisor",), body=AckIn,
              body_optional=True, response=Alert, desk=True,
              summary="Acknowledge an alert; again changes nothing and answers it as it is")
async def acknowledge(request: web.Request) -> web.StreamResponse:
    deps, principal = request.app[DEPS], request[PRINCIPAL]
    body = deps.privacy.safe_ids(await parse(request, AckIn, optional=True), "supervisor_id")
    # A panel acknowledges as its own supervisor, whatever the body says.
    by = principal.agent_id or body.supervisor_id or principal.key_id
    done = await alerts.acknowledge(deps, principal, request.match_info["id"], by)
    return render(request, done.alert)
