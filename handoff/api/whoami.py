"""`GET /v1/whoami`: the calling key's tenant and role, so a client (the MCP server) can offer
exactly what the key may do without trying routes to find out."""

from __future__ import annotations

from aiohttp import web

from handoff.api.bodies import render
from handoff.api.routing import Routes
from handoff.api.state import PRINCIPAL
from schemas.caller import Caller

routes = Routes()


@routes.route("GET", "/v1/whoami", roles=("bot", "ivr", "agent", "supervisor", "admin"),
              response=Caller, summary="The calling key: its tenant, role and id")
async def whoami(request: web.Request) -> web.StreamResponse:
    principal = request[PRINCIPAL]
    return render(request, Caller(id=principal.key_id, tenant=principal.tenant,
                                  role=principal.role))
