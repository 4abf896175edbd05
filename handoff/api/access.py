"""Per request: an `X-Request-ID`, one access log line and one metrics sample.

The first and the last step of the request pipeline (handoff/api/middleware.py), so it sees the
final answer of every request: problem+json errors, backpressure refusals and router 404s
included. Routes are logged and counted by template (`/v1/customers/{ref}/context`): a path may
name a customer by a sensitive identity, the template never does; the customer id is logged
instead, when a service resolved one.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from contextvars import Token

from aiohttp import web

from handoff.api.paths import shown_path
from handoff.api.remote import client_address
from handoff.api.state import PREPARED, PRINCIPAL, REQUEST_ID
from handoff.kernel import logs, metrics
from handoff.kernel.masking import mask_text

HEADER = "X-Request-ID"
# What load balancers and tracing headers send (UUIDs, hex trace ids, `Root=1-...` style ids).
VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:;=+/@-]{0,127}$")
log = logs.logger("handoff.access")


# A new id is this process's random prefix and a count: unique across processes and restarts
# without asking the operating system for randomness on every request.
_PREFIX = secrets.token_hex(8)
_COUNT = itertools.count(1)


def request_id(offered: str | None) -> str:
    """The caller's id when it is a sane one, else a new one (a bad id never fails a request)."""
    # The id is written to the access line unmasked: one that could be a key or token is not.
    if (offered and VALID_ID.match(offered) and mask_text(offered) == offered
            and not logs.holds_credential(offered)):
        return offered
    return f"{_PREFIX}{next(_COUNT):016x}"


def route_of(request: web.Request) -> str | None:
    """The matched route's template; None when no route matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


# What `begin` hands `finish`: the log context, its reset token and the start time.
Visit = tuple[logs.RequestContext, Token[logs.RequestContext | None], float]


def begin(request: web.Request) -> Visit:
    """Name the request and start its clock; `finish` must follow, whatever happens."""
    rid = request_id(request.headers.get(HEADER))
    request[REQUEST_ID] = rid
    context, token = logs.begin_request(rid)
    return context, token, time.perf_counter()


def cancelled_status(request: web.Request) -> int:
    """The status of a request whose client went away before it was answered."""
    # An event stream whose client left keeps the status it was sent with; a request dropped
    # before its answer gets nginx's code for "the client went away".
    prepared = request.get(PREPARED)
    return prepared.status if prepared else 499


def finish(request: web.Request, visit: Visit, status: int) -> None:
    """One metrics sample and one access line for the request `begin` named."""
    context, token, start = visit
    elapsed = time.perf_counter() - start
    route = route_of(request)
    prepared = request.get(PREPARED)
    stream = prepared is not None and prepared.content_type == "text/event-stream"
    method = metrics.method_label(request.method)
    metrics.request(method, route, status, None if stream else elapsed)
    if log.isEnabledFor(logging.INFO):  # HANDOFF_LOG_LEVEL=WARNING: no access lines
        principal = request.get(PRINCIPAL)
        fields = {
            "request_id": context.request_id, "method": method, "route": route,
            "status": status, "latency_ms": round(elapsed * 1000, 2),
            "tenant": principal.tenant if principal else None,
            "key_id": principal.key_id if principal else None,
            "customer_id": context.customer_id, "remote": client_address(request)}
        if route is None:  # no template: what was asked for, sanitised by handoff/api/paths.py
            fields["path"] = shown_path(request.path)
        # Route templates, ids checked on the way in, numbers, a sanitised path: nothing here
        # to mask.
        logs.safe_info_line(log, f"{method} {route or fields['path']} {status}", fields)
    logs.end_request(token)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names its request, event streams included (their headers go out early)."""
    request[PREPARED] = response
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[HEADER] = rid
