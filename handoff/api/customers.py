"""Reading a customer's context and transcript, and setting facts."""

from __future__ import annotations

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import JSON, MSGPACK, encode, parse, render, wants_msgpack
from handoff.api.routing import Query, Routes
from handoff.api.state import DEPS, PRINCIPAL, RENDERED_BRIEFS
from handoff.kernel import metrics
from handoff.services import brief, conversations, facts
from schemas.brief import Brief
from schemas.common import Page
from schemas.conversations import FactsResult, PutFacts, Turn

routes = Routes()
AGENT = Query("X-Agent-Id", "the person using the agent key, for the audit trail")
TURNS = Query("turns", "how many of the latest turns to include (default 50, at most 500)",
              {"type": "integer", "minimum": 0, "maximum": 500})


@routes.route("PUT", "/v1/customers/{ref}/facts", roles=("bot", "ivr", "agent"),
              summary="Set facts (merged by key; history kept)", body=PutFacts,
              response=FactsResult)
async def put_facts(request: web.Request) -> web.StreamResponse:
    body = await parse(request, PutFacts)
    result = await facts.put_facts(request.app[DEPS], request[PRINCIPAL],
                                   request.match_info["ref"], body)
    return render(request, result)


# Bots and IVRs read the brief too: a virtual agent continues where the other channels left
# off. They find customers only by the refs they may use (their own channel's identities).
@routes.route("GET", "/v1/customers/{ref}/context",
              roles=("bot", "ivr", "agent", "supervisor"),
              summary="The context brief; ETag and If-None-Match supported", response=Brief,
              query=(TURNS,), headers=(AGENT,), desk=True)
async def context(request: web.Request) -> web.StreamResponse:
    deps, principal = request.app[DEPS], request[PRINCIPAL]
    turns = params.integer(request, "turns", default=deps.settings.brief_turns, low=0, high=500)
    wanted = request.headers.get("If-None-Match")
    result, tag = await brief.read(deps, principal, request.match_info["ref"], turns,
                                   {t.strip() for t in wanted.split(",")} if wanted else set(),
                                   params.viewer(request))
    if result is None:
        return web.Response(status=304, headers={"ETag": tag})
    # An agent re-reads the brief it works on again and again: the same ETag is the same brief,
    # so its bytes are rendered once per format, not once per read.
    rendered = request.app[RENDERED_BRIEFS]
    content_type = MSGPACK if wants_msgpack(request) else JSON
    key = (principal.tenant, result.customer.id, turns, content_type)
    hit = rendered.get(key)
    if hit is not None and hit[0] == tag:
        body = hit[1]
    else:
        body, _ = encode(request, result)
        rendered.set(key, (tag, body))
    metrics.brief(len(body), len(result.turns))
    return web.Response(body=body, content_type=content_type,
                        headers={"ETag": tag, "Cache-Control": "private, no-cache"})


@routes.route("GET", "/v1/customers/{ref}/turns", roles=("agent", "supervisor"),
              summary="The full transcript, newest first, paged by cursor",
              response=Page[Turn], headers=(AGENT,), desk=True,
              query=(Query("before", "the `next` of the previous page", params.NAME_SCHEMA),
                     Query("limit", "page size (default 100, at most 500)",
                           {"type": "integer", "minimum": 1, "maximum": 500})))
async def transcript(request: web.Request) -> web.StreamResponse:
    limit = params.integer(request, "limit", default=100, low=1, high=500)
    before = params.cursor(request)
    page = await conversations.transcript(request.app[DEPS], request[PRINCIPAL],
                                          request.match_info["ref"], before, limit,
                                          params.viewer(request))
    return render(request, page)

