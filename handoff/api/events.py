"""Server-sent events: a customer's changes and a tenant's queue, resumable by Last-Event-ID."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Iterator

from aiohttp import web

from handoff.api import params
from handoff.api.routing import Query, Routes
from handoff.api.state import BACKPRESSURE, CLOSING, DEPS, LIFETIMES, PRINCIPAL, STREAMS
from handoff.kernel import metrics
from handoff.kernel.errors import StoreUnavailable
from handoff.services import audit, events, resolving
from handoff.services.events import Event, Lifetime

routes = Routes()
LAST_EVENT_ID = Query("Last-Event-ID", "resume after this event id")
BLOCK_MS = 5_000
# The last event of a stream whose key was revoked or expired, or whose panel token expired.
ACCESS_ENDED = "access.ended"


def _frame(event: Event) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


@contextlib.contextmanager
def _stream_slot(request: web.Request) -> Iterator[None]:
    """Room for one more stream of this caller (429/503 otherwise), taken before any work is
    done for it and given back when it ends."""
    pressure, principal = request.app[BACKPRESSURE], request[PRINCIPAL]
    # One desk key mints the panel tokens of a whole contact centre: each agent's panel has
    # its own share, not one share for all of them (the tenant's cap still bounds the total).
    holder = (principal.key_id if principal.agent_id is None
              else f"{principal.key_id} {principal.agent_id}")
    pressure.open_stream(principal.tenant, holder)
    try:
        yield
    finally:
        pressure.close_stream(principal.tenant, holder)


async def _serve(request: web.Request, customer_id: str | None, *, stream: str | None = None
                 ) -> web.StreamResponse:
    deps = request.app[DEPS]
    after = events.check_last_event_id(
        request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    # A definite start, announced to the client, so a stream that drops before its first event
    # still resumes without a gap.
    start = await events.position(deps, request[PRINCIPAL].tenant, customer_id, after,
                                  stream=stream)
    feed = events.follow(deps, request[PRINCIPAL].tenant, customer_id, start,
                         replay=after is not None, block_ms=BLOCK_MS, stream=stream)
    lifetimes = request.app[LIFETIMES]
    lifetime = await lifetimes.open(request[PRINCIPAL])
    try:
        return await _stream(request, feed, start, lifetime)
    finally:
        lifetimes.close(lifetime)


async def _stream(request: web.Request, feed: AsyncGenerator[list[Event], None],
                  after: str, lifetime: Lifetime) -> web.StreamResponse:
    first = await anext(feed)  # errors here are still a problem+json answer
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    request.app[STREAMS].add(response)
    closing = request.app[CLOSING]
    batch: list[Event] | None = first
    last: str = after
    reason = "server.closing"
    try:
        with metrics.EVENT_STREAMS.track_inprogress():
            await response.write(f"retry: 2000\nid: {after}\n\n".encode())
            while batch is not None:
                for event in batch:
                    await response.write(_frame(event))
                    last = event.id
                if not batch:
                    await response.write(b": keep-alive\n\n")
                if closing.is_set() or lifetime.reason is not None:
                    break
                try:
                    # None: the key or panel token ended, even in the middle of the wait.
                    batch = await lifetime.step(anext(feed))
                except StoreUnavailable:
                    reason = "server.unavailable"  # headers are sent: say so in the stream
                    break
    except ConnectionResetError:
        return response  # the client left
    finally:
        await feed.aclose()
    # Tell the client why the stream ends and where to resume, on any process. Credentials that
    # ended say which (`key_revoked`, `key_expired`, `token_expired`): reconnecting with them
    # is refused, so the client needs new ones, and can resume with them from `last_event_id`.
    if lifetime.reason is not None:
        bye = json.dumps({"type": ACCESS_ENDED, "reason": lifetime.reason,
                          "last_event_id": last})
        reason = ACCESS_ENDED
    else:
        bye = json.dumps({"type": reason, "last_event_id": last})
    with contextlib.suppress(ConnectionResetError):
        await response.write(f"event: {reason}\ndata: {bye}\n\n".encode())
        await response.write_eof()
    return response


@routes.route("GET", "/v1/customers/{ref}/events", roles=("bot", "ivr", "agent"),
              produces="text/event-stream", headers=(LAST_EVENT_ID,), desk=True,
              summary="Live changes of one customer: turns, facts, verifications, hand-offs")
async def customer_events(request: web.Request) -> web.StreamResponse:
    deps, principal = request.app[DEPS], request[PRINCIPAL]
    with _stream_slot(request):
        cus_id = await resolving.resolve_ref(deps, principal, request.match_info["ref"])
        await audit.record(deps, principal, cus_id, "events", params.viewer(request))
        return await _serve(request, cus_id)


@routes.route("GET", "/v1/handoffs/events", roles=("agent", "supervisor"),
              produces="text/event-stream",
              headers=(LAST_EVENT_ID,), desk=True,
              summary="Live changes of the tenant's hand-off queue")
async def queue_events(request: web.Request) -> web.StreamResponse:
    with _stream_slot(request):
        return await _serve(request, None)


@routes.route("GET", "/v1/alerts/events", roles=("supervisor",), produces="text/event-stream",
              headers=(LAST_EVENT_ID,), desk=True,
              summary="Live risk alerts of the tenant: alert.raised, alert.acknowledged")
async def alert_events(request: web.Request) -> web.StreamResponse:
    tenant = request[PRINCIPAL].tenant
    with _stream_slot(request):
        return await _serve(request, None,
                            stream=request.app[DEPS].store.alerts.events_name(tenant))
