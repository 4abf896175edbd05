"""The one error layer: anything a handler raises becomes RFC 9457 problem+json."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from handoff import logs
from handoff.api.access import route_of
from handoff.api.state import PRINCIPAL
from handoff.errors import (
    HandoffError,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from handoff.services.masking import mask_text
from handoff.store.connection import map_exceptions

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


@web.middleware
async def problems(request: web.Request, handler: Any) -> web.StreamResponse:
    """Render every failure as problem+json; log what we did not expect, never the body."""
    try:
        with map_exceptions():
            return await handler(request)  # type: ignore[no-any-return]
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
                      route_of(request) or "-",
                      principal.tenant if principal else "-")
        return problem(500, detail="an unexpected error; it has been logged",
                       instance=mask_text(request.path))
