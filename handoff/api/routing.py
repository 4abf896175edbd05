"""Declared endpoints: each knows its roles, body and response, so the router, the role checks
and the OpenAPI document all come from one table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps

from aiohttp import web
from pydantic import BaseModel

from handoff.api.remote import client_address
from handoff.api.state import AUTH_FAILURES, BACKPRESSURE, DEPS, PRINCIPAL
from handoff.kernel.errors import Forbidden, Unauthorized, with_article
from handoff.services import apikeys, desktokens
from handoff.services.deps import Deps, Principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    schema: dict[str, object] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str] | None
    summary: str
    body: type[BaseModel] | None = None
    body_optional: bool = False
    response: type[BaseModel] | None = None
    status: int = 200
    query: tuple[Query, ...] = ()
    produces: str = "application/json"
    headers: tuple[Query, ...] = ()
    in_schema: bool = True
    desk: bool = False


class Routes:
    """A module's endpoints, registered with a decorator."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(self, method: str, path: str, *, roles: tuple[str, ...] | None, summary: str,
              body: type[BaseModel] | None = None, body_optional: bool = False,
              response: type[BaseModel] | None = None, status: int = 200,
              query: tuple[Query, ...] = (), produces: str = "application/json",
              headers: tuple[Query, ...] = (), in_schema: bool = True, desk: bool = False
              ) -> Callable[[Handler], Handler]:
        """`desk`: an agent panel token may call it too, as the agent key that minted it;
        `in_schema=False` keeps it out of the OpenAPI document."""
        def register(handler: Handler) -> Handler:
            guarded = handler if roles is None else _guard(handler, frozenset(roles), desk)
            self.endpoints.append(Endpoint(
                method, path, guarded, None if roles is None else frozenset(roles), summary,
                body, body_optional, response, status, query, produces, headers, in_schema,
                desk))
            return guarded
        return register

    def install(self, app: web.Application) -> None:
        app.add_routes([web.route(e.method, e.path, e.handler) for e in self.endpoints])


def _guard(handler: Handler, roles: frozenset[str], desk: bool) -> Handler:
    """Authenticate (401) and authorise (403) before the handler sees anything."""
    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        deps, guard = request.app[DEPS], request.app[AUTH_FAILURES]
        credentials = request.headers.get("Authorization")
        if credentials is not None:
            guard.check(client_address(request), credentials)
        try:
            principal = await _authenticate(deps, request, desk)
        except Unauthorized:
            # No credentials at all guess nothing, and vendors that keep them in a webhook URL
            # (Twilio) always ask without them first: only a wrong key counts as a failure.
            if credentials is not None:
                await guard.failed(client_address(request), credentials, deps.now_ms())
            raise
        if principal.desk and not desk:
            raise Forbidden("a panel token may only use the panel's routes; "
                            "use an agent key here")
        if principal.role not in roles:
            *others, last = sorted(roles)
            needed = f"{', '.join(others)} or {last}" if others else last
            raise Forbidden(f"{with_article(principal.role)} key may not use this route; "
                            f"it needs {with_article(needed)} key")
        request.app[BACKPRESSURE].take(principal.key_id)
        request[PRINCIPAL] = principal
        return await handler(request)
    return guarded


async def _authenticate(deps: Deps, request: web.Request, desk: bool) -> Principal:
    """An API key, or on panel routes a panel token: in `Authorization: Bearer`, or (for
    `EventSource`, which cannot send headers) as `access_token=` on a GET. Keys never travel in
    URLs, so only a panel token is taken from one."""
    authorization = request.headers.get("Authorization")
    token = request.query.get("access_token") if request.method == "GET" else None
    if authorization is None and desk and token is not None:
        if not desktokens.is_token(token):
            raise Unauthorized("access_token takes a panel token, never an API key")
        return await desktokens.verify(deps, token)
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and desktokens.is_token(secret.strip()):
        return await desktokens.verify(deps, secret.strip())
    return await apikeys.authenticate(deps, authorization)
