"""Per request: an `X-Request-ID`, one access log line and one metrics sample.

The outermost middleware, so it sees the final answer of every request: problem+json errors,
backpressure refusals and router 404s included. Routes are logged and counted by template
(`/v1/customers/{ref}/context`): a path may name a customer by a sensitive identity, the
template never does; the customer id is logged instead, when a service resolved one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from typing import Any

from aiohttp import web

from handoff import logs, metrics
from handoff.api.remote import client_address
from handoff.api.state import PREPARED, PRINCIPAL, REQUEST_ID
from handoff.services.masking import mask_text

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


@web.middleware
async def access(request: web.Request, handler: Any) -> web.StreamResponse:
    rid = request_id(request.headers.get(HEADER))
    request[REQUEST_ID] = rid
    context, token = logs.begin_request(rid)
    start = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects and the like, passed through on purpose
        status = exc.status
        raise
    except asyncio.CancelledError:
        # An event stream whose client left keeps the status it was sent with; a request
        # dropped before its answer gets nginx's code for "the client went away".
        status = prepared.status if (prepared := request.get(PREPARED)) else 499
        raise
    finally:
        elapsed = time.perf_counter() - start
        route = route_of(request)
        prepared = request.get(PREPARED)
        stream = prepared is not None and prepared.content_type == "text/event-stream"
        method = metrics.method_label(request.method)
        metrics.request(method, route, status, None if stream else elapsed)
        if log.isEnabledFor(logging.INFO):  # HANDOFF_LOG_LEVEL=WARNING: no access lines
            principal = request.get(PRINCIPAL)
            log.info("%s %s %d", method, route or "-", status, extra={"fields": {
                "request_id": rid, "method": method, "route": route, "status": status,
                "latency_ms": round(elapsed * 1000, 2),
                "tenant": principal.tenant if principal else None,
                "key_id": principal.key_id if principal else None,
                "customer_id": context.customer_id, "remote": client_address(request)},
                # Route templates, ids checked on the way in, numbers: nothing here to mask.
                "fields_safe": True})
        logs.end_request(token)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names its request, event streams included (their headers go out early)."""
    request[PREPARED] = response
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[HEADER] = rid
