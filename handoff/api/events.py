"""Server-sent events: a customer's changes and a tenant's queue, resumable by Last-Event-ID."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator

from aiohttp import web

from handoff import metrics
from handoff.api import params
from handoff.api.routing import Query, Routes
from handoff.api.state import BACKPRESSURE, CLOSING, DEPS, PRINCIPAL, STREAMS
from handoff.errors import StoreUnavailable
from handoff.services import audit, events, identity
from handoff.services.events import Event

routes = Routes()
LAST_EVENT_ID = Query("Last-Event-ID", "resume after this event id")
BLOCK_MS = 5_000


def _frame(event: Event) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def _serve(request: web.Request, customer_id: str | None) -> web.StreamResponse:
    deps = request.app[DEPS]
    after = events.check_last_event_id(
        request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    # A definite start, announced to the client, so a stream that drops before its first event
    # still resumes without a gap.
    start = await events.position(deps, request[PRINCIPAL].tenant, customer_id, after)
    feed = events.follow(deps, request[PRINCIPAL].tenant, customer_id, start,
                         replay=after is not None, block_ms=BLOCK_MS)
    pressure = request.app[BACKPRESSURE]
    pressure.open_stream()
    try:
        return await _stream(request, feed, start)
    finally:
        pressure.close_stream()


async def _stream(request: web.Request, feed: AsyncGenerator[list[Event], None],
                  after: str) -> web.StreamResponse:
    first = await anext(feed)  # errors here are still a problem+json answer
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    request.app[STREAMS].add(response)
    closing = request.app[CLOSING]
    batch = first
    last: str = after
    reason = "server.closing"
    try:
        with metrics.EVENT_STREAMS.track_inprogress():
            await response.write(f"retry: 2000\nid: {after}\n\n".encode())
            while True:
                for event in batch:
                    await response.write(_frame(event))
                    last = event.id
                if not batch:
                    await response.write(b": keep-alive\n\n")
                if closing.is_set():
                    break
                try:
                    batch = await anext(feed)
                except StoreUnavailable:
                    reason = "server.unavailable"  # headers are sent: say so in the stream
                    break
    except ConnectionResetError:
        return response  # the client left
    finally:
        await feed.aclose()
    # Tell the client why the stream ends and where to resume, on any process.
    bye = json.dumps({"type": reason, "last_event_id": last})
    with contextlib.suppress(ConnectionResetError):
        await response.write(f"event: {reason}\ndata: {bye}\n\n".encode())
        await response.write_eof()
    return response


@routes.route("GET", "/v1/customers/{ref}/events", roles=("agent",),
              produces="text/event-stream", headers=(LAST_EVENT_ID,), desk=True,
              summary="Live changes of one customer: turns, facts, verifications, hand-offs")
async def customer_events(request: web.Request) -> web.StreamResponse:
    deps, principal = request.app[DEPS], request[PRINCIPAL]
    cus_id = await identity.resolve_ref(deps, principal, request.match_info["ref"])
    await audit.record(deps, principal, cus_id, "events", params.viewer(request))
    return await _serve(request, cus_id)


@routes.route("GET", "/v1/handoffs/events", roles=("agent",), produces="text/event-stream",
              headers=(LAST_EVENT_ID,), desk=True,
              summary="Live changes of the tenant's hand-off queue")
async def queue_events(request: web.Request) -> web.StreamResponse:
    return await _serve(request, None)
