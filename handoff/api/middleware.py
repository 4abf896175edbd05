"""The request pipeline: the one aiohttp middleware, and the one error layer.

Each request goes through, in order: its access entry (request id, then one metrics sample and
one access line with the final status, handoff/api/access.py), the problem+json rendering of
anything raised below, the in-flight cap (handoff/api/backpressure.py), the handler, and with
`HANDOFF_WRITE_ACK=replica` the wait for a replica (handoff/api/durability.py). They run in one
coroutine rather than one middleware each: aiohttp gives every middleware a frame and a handler
wrapper of its own, per request.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from handoff.api import access, durability
from handoff.api.access import route_of
from handoff.api.backpressure import Backpressure
from handoff.api.state import PRINCIPAL
from handoff.kernel import logs
from handoff.kernel.errors import (
    HandoffError,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from handoff.kernel.masking import mask_text

log = logs.logger("handoff.api")
PROBLEM = "application/problem+json"


def problem(status: int, *, title: str | None = None, detail: str | None = None,
            type_: str = "about:blank", instance: str | None = None,
            errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None,
            extra: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"type": type_, "title": title or HTTPStatus(status).phrase,
                            "status": status, "detail": detail or HTTPStatus(status).description}
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra or {})
    context = logs.current_request()
    if context is not None:  # lets a caller's bug report point at our log line
        body["request_id"] = context.request_id
    return web.json_response(body, status=status, content_type=PROBLEM, headers=headers)


def _from_error(request: web.Request, exc: HandoffError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyRequests | StoreUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        # Vendors that keep credentials in a webhook URL (Twilio) send them only after a 401
        # that names the Basic scheme.
        scheme = "Basic" if request.path.startswith("/v1/adapters/") else "Bearer"
        headers["WWW-Authenticate"] = f'{scheme} realm="handoff"'
    errors = exc.extra.get("errors") if isinstance(exc, Unprocessable) else None
    extra = {k: v for k, v in exc.extra.items() if k != "errors"}
    return problem(exc.status, title=exc.title, detail=exc.detail, type_=exc.type,
                   instance=mask_text(request.path), errors=errors, headers=headers, extra=extra)


def rendered(request: web.Request, raised: Exception) -> web.Response:
    """What a failure is answered with: problem+json; what we did not expect is logged, never
    the body. A redirect (an HTTPException below 400) is raised again, to be sent as it is."""
    try:
        # The store raises "Redis is away" as StoreUnavailable itself (store/operations.py).
        raise raised
    except HandoffError as exc:
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, route_of(request) or "-", exc.detail)
        return _from_error(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        detail = {404: "no such route", 405: f"{request.method} is not allowed here",
                  413: f"the body is larger than {request.client_max_size} bytes"}.get(
                      exc.status, exc.reason)
        return problem(exc.status, detail=detail, instance=mask_text(request.path), headers=headers)
    except Exception:
        principal = request.get(PRINCIPAL)
        log.exception("unhandled error on %s %s (tenant %s)", request.method,
                      route_of(request) or "-", principal.tenant if principal else "-")
        return problem(500, detail="an unexpected error; it has been logged",
                       instance=mask_text(request.path))


def pipeline(pressure: Backpressure, *, replica_ack: bool) -> Middleware:
    """The middleware every request goes through (see the module's docstring); `replica_ack`:
    hold each successful write's answer until a replica has it."""
    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        visit = access.begin(request)
        status = 500
        try:
            try:
                counted = pressure.admit(request.method, request.path)
                try:
                    mark = durability.mark(request) if replica_ack else None
                    response = await handler(request)
                    if mark is not None:
                        await durability.confirm(mark, response)
                finally:
                    if counted:
                        pressure.done()
            except Exception as exc:
                response = rendered(request, exc)
            status = response.status
            return response
        except web.HTTPException as exc:  # redirects and the like, passed through on purpose
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = access.cancelled_status(request)
            raise
        finally:
            access.finish(request, visit, status)
    return handle
