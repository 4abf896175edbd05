"""Transcript writes."""

from __future__ import annotations

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import parse, render
from handoff.api.routing import Routes
from handoff.api.state import DEPS, LEXICON, PRINCIPAL
from handoff.services import conversations
from schemas.conversations import AppendResult, AppendTurns

routes = Routes()


@routes.route("POST", "/v1/conversations/{conversation_id}/turns", roles=("bot", "ivr", "agent"),
              summary="Append turns (idempotent per turn id); facts may ride along",
              body=AppendTurns, response=AppendResult, desk=True)
async def append_turns(request: web.Request) -> web.StreamResponse:
    conversation_id = params.name(request, "conversation_id")
    body = await parse(request, AppendTurns)
    result = await conversations.append_turns(request.app[DEPS], request[PRINCIPAL],
                                              request.app[LEXICON], conversation_id, body)
    return render(request, result)
