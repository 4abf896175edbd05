"""The two transports: Streamable HTTP at `/mcp`, as its own process (`handoff mcp --http`),
and stdio (`handoff mcp --key ...`) for a desktop AI tool that starts the server itself.

Every HTTP request must carry `Authorization: Bearer <API key>`; the key is checked with the
service (`GET /v1/whoami`) before the MCP layer sees the request, and a session belongs to the
key that opened it (another key gets 404 for it, as the SDK does for any credential).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from handoff.client import ClientError, ProblemError
from handoff.mcp.gateway import Gateway
from handoff.mcp.server import HandoffMCP, access_token, problem_text

log = logging.getLogger("handoff.mcp")
PATH = "/mcp"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None
             ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return status, [(b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()), *extra], body


async def _answer(send: Send, answer: tuple[int, list[tuple[bytes, bytes]], bytes]) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class KeyAuth:
    """ASGI: the request's API key, checked with the service, or the service's own refusal
    (401, 429, 503) as problem+json."""

    def __init__(self, app: Any, gateway: Gateway) -> None:
        self.app, self.gateway = app, gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            await _answer(send, _problem(401, "Unauthorized",
                                         "send an API key as Authorization: Bearer <key>",
                                         {"WWW-Authenticate": "Bearer"}))
            return
        try:
            caller = await self.gateway.whoami(key)
        except ProblemError as exc:
            extra = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else {}
            if exc.status == 401:
                extra["WWW-Authenticate"] = "Bearer"
            await _answer(send, _problem(exc.status, exc.title, exc.detail or "", extra))
            return
        except ClientError as exc:
            await _answer(send, _problem(503, "Service Unavailable", problem_text(exc),
                                         {"Retry-After": "2"}))
            return
        scope["user"] = AuthenticatedUser(access_token(key, caller))
        await self.app(scope, receive, send)


def http_app(url: str, *, host: str = "127.0.0.1") -> Starlette:
    """The Streamable HTTP app at `/mcp` for the service at `url`."""
    gateway = Gateway(url)
    mcp = HandoffMCP(gateway)
    # A browser page that rebinds a name to loopback could reach a local server: on loopback
    # only local Host and Origin headers are accepted (the SDK's own default there).
    security = (TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        if host in LOOPBACK else None)
    manager = StreamableHTTPSessionManager(app=mcp.server, security_settings=security)

    async def end(session_id: str, user: Any) -> None:
        """End a session as its client would, with a DELETE under its own credentials."""
        scope: Scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "DELETE", "scheme": "http", "path": PATH, "raw_path": PATH.encode(),
            "root_path": "", "query_string": b"", "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 0), "user": user,
            "headers": [(b"host", b"127.0.0.1:80"), (b"mcp-session-id", session_id.encode())]}
        answered: list[int] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        await manager.handle_request(scope, receive, send)
        log.warning("MCP session ended: %s", answered[0] if answered else "no answer")

    mcp.end_http = end
    endpoint = KeyAuth(manager.handle_request, gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            try:
                yield
            finally:
                await gateway.close()

    return Starlette(routes=[Route(PATH, endpoint=endpoint)], lifespan=lifespan)


def serve_http(url: str, *, host: str, port: int) -> None:
    """Run the Streamable HTTP server until SIGINT or SIGTERM."""
    import uvicorn

    config = uvicorn.Config(http_app(url, host=host), host=host, port=port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=5, lifespan="on")
    print(f"handoff MCP on http://{host}:{port}{PATH} for {url}", flush=True)
    uvicorn.Server(config).run()


async def serve_stdio(url: str, key: str) -> int:
    """Serve one MCP client on stdin/stdout with one key; 2 if the service refuses the key."""
    gateway = Gateway(url)
    try:
        try:
            caller = await gateway.whoami(key)
        except ClientError as exc:
            log.error("handoff refused to start: %s", problem_text(exc))
            return 2
        mcp = HandoffMCP(gateway, stdio=(key, caller))
        with anyio.CancelScope() as scope:
            mcp.end_stdio = scope.cancel
            async with stdio_server() as (read, write):
                await mcp.server.run(read, write, mcp.server.create_initialization_options())
        return 1 if scope.cancel_called else 0
    finally:
        await gateway.close()
