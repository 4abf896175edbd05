"""The MCP server: tools and a resource over the REST API, called with the caller's own key.

It holds no store and no authority of its own. Every tool call, resource read and subscription
is a REST request made with the key the MCP client presented (`Authorization: Bearer` over
HTTP, `--key` over stdio), so the service's role checks, tenant isolation, masking, audit trail
and rate limits apply to it exactly as to any REST client, and its errors are the service's own
problem+json, passed on as tool errors.

A session ends when its key stops working: any REST answer 401, the `access.ended` event the
service sends down a subscription's event stream when the key is revoked, or the key re-check
every `KEY_RECHECK_S` seconds, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from handoff.client import (
    ClientError,
    EventStream,
    ProblemError,
    UnauthorizedError,
)
from handoff.kernel.errors import Unprocessable
from handoff.mcp.gateway import Gateway
from handoff.mcp.tools import BY_NAME, dumps, tools_for
from schemas.caller import Caller

log = logging.getLogger("handoff.mcp")
URI_PREFIX, URI_SUFFIX = "handoff://customers/", "/context"
TEMPLATE = URI_PREFIX + "{ref}" + URI_SUFFIX
# How often a session re-checks that its key still works, when nothing else has told it.
KEY_RECHECK_S = 15.0
ACCESS_ENDED = "access.ended"
WATCHES = "handoff.watches"


def uri_for(ref: str) -> str:
    """The context resource of a customer (`cus_...` or `kind:value`)."""
    return URI_PREFIX + quote(ref, safe=":@") + URI_SUFFIX


def ref_of(uri: str) -> str:
    """The customer a context resource URI names; MCPError if it is not one."""
    text = str(uri)
    if text.startswith(URI_PREFIX) and text.endswith(URI_SUFFIX):
        ref = unquote(text[len(URI_PREFIX):-len(URI_SUFFIX)])
        if ref and "/" not in ref and len(ref) <= 300 and ref.isprintable():
            return ref
    raise MCPError(types.INVALID_PARAMS, f"not a customer context URI ({TEMPLATE})")


def problem_text(exc: ClientError) -> str:
    if isinstance(exc, ProblemError):
        return f"{exc.title}: {exc.detail}" if exc.detail else exc.title
    return "Service Unavailable: handoff did not answer; nothing may have been done, retry"


def tool_error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                is_error=True)


def _invalid(exc: ValidationError) -> str:
    # Field paths and messages only: pydantic's own text repeats the input (a card number, say).
    fields = "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"]
                       for e in exc.errors(include_url=False, include_input=False)[:20])
    return f"{Unprocessable.title}: {fields}"


def _connection(ctx: ServerRequestContext[Any, Any]) -> Any:
    # The SDK gives lowlevel handlers no public handle on their connection yet (its newer
    # `Context` has one); per-connection state and cleanup live there.
    return ctx.session._connection


Ender = Callable[[], Awaitable[None]]


class HandoffMCP:
    """The MCP server over one handoff URL. `stdio` is the one caller of a stdio process; over
    HTTP each request carries its own (see `handoff.mcp.http`)."""

    def __init__(self, gateway: Gateway, *, stdio: tuple[str, Caller] | None = None) -> None:
        self.gateway = gateway
        self.stdio = stdio
        # How to end a session: stdio stops the process, HTTP deletes the session.
        self.end_stdio: Callable[[], None] | None = None
        self.end_http: Callable[[str, Any], Awaitable[None]] | None = None
        self.server: Server[Any] = Server(
            "handoff", version="0.1.0",
            instructions="Customer context shared by every channel. Call get_customer_context "
                         "before asking the customer anything, and check_reask before any "
                         "question; record what was said with append_turns.",
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe, on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=self._listen)
        self.server.middleware.append(self._watch_key)

    # -- who is calling -------------------------------------------------------------------

    def caller(self, ctx: ServerRequestContext[Any, Any]) -> tuple[str, Caller]:
        """The key and caller of this request."""
        request = ctx.request
        if request is None:
            if self.stdio is None:
                raise MCPError(types.INVALID_REQUEST, "no API key")
            return self.stdio
        user = request.scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            raise MCPError(types.INVALID_REQUEST, "no API key")
        token = user.access_token
        claims = token.claims or {}
        return token.token, Caller(id=token.client_id, tenant=str(claims.get("tenant", "")),
                                   role=token.scopes[0])

    def ender(self, ctx: ServerRequestContext[Any, Any]) -> Ender:
        """What ends this request's session (a key that stopped working)."""
        key, _ = self.caller(ctx)
        request = ctx.request
        session_id = request.headers.get("mcp-session-id") if request is not None else None
        user = request.scope.get("user") if request is not None else None
        if session_id is None and request is not None:
            session_id = _connection(ctx).session_id

        async def end() -> None:
            self.gateway.forget(key)
            if request is None and self.end_stdio is not None:
                log.warning("the API key stopped working; ending the session")
                self.end_stdio()
            elif session_id and self.end_http is not None:
                log.warning("an API key stopped working; ending its MCP session")
                await self.end_http(session_id, user)
        return end

    async def _watch_key(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
                         ) -> HandlerResult:
        """On a session's first request, start re-checking its key until the session ends."""
        connection = _connection(ctx)
        long_lived = ctx.request is None or connection.session_id is not None
        if long_lived and not connection.state.get("handoff.key_watch"):
            with contextlib.suppress(MCPError):
                key, _ = self.caller(ctx)
                task = asyncio.create_task(self._recheck(key, self.ender(ctx)),
                                           name="handoff-mcp-key-watch")
                connection.state["handoff.key_watch"] = task
                connection.exit_stack.callback(task.cancel)
        return await call_next(ctx)

    async def _recheck(self, key: str, end: Ender) -> None:
        while True:
            await asyncio.sleep(KEY_RECHECK_S)
            try:
                await self.gateway.whoami(key, fresh=True)
            except UnauthorizedError:
                await end()
                return
            except ClientError as exc:  # the service briefly away: not the key's fault
                log.info("key re-check skipped: %s", problem_text(exc))

    # -- tools ----------------------------------------------------------------------------

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        _, caller = self.caller(ctx)
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.input_schema(),
                       output_schema=t.output_schema())
            for t in tools_for(caller.role)])

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = BY_NAME.get(params.name)
        if tool is None:
            return tool_error(f"Not Found: no tool named {params.name[:100]!r}")
        key, _ = self.caller(ctx)
        try:
            args = tool.params.model_validate(params.arguments or {})
        except ValidationError as exc:
            return tool_error(_invalid(exc))
        try:
            structured, text = await tool.run(self.gateway.client(key), args)
        except UnauthorizedError as exc:
            await self.ender(ctx)()
            return tool_error(problem_text(exc))
        except ClientError as exc:
            return tool_error(problem_text(exc))
        except Exception:  # never a stack trace to the caller; the log has it (masked)
            log.exception("tool %s failed", tool.name)
            return tool_error("Internal Server Error: the MCP server failed on this call")
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=dumps(structured))

    # -- the context resource ---------------------------------------------------------------

    async def _list_resources(self, ctx: ServerRequestContext[Any, Any],
                              params: types.PaginatedRequestParams | None
                              ) -> types.ListResourcesResult:
        # Customers are not enumerable: each is read by the template with a ref.
        return types.ListResourcesResult(resources=[])

    async def _list_templates(self, ctx: ServerRequestContext[Any, Any],
                              params: types.PaginatedRequestParams | None
                              ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate(
            uri_template=TEMPLATE, name="customer-context", title="Customer context brief",
            description="A customer's brief (JSON, and the compact text rendering); "
                        "ref is cus_... or kind:value. Subscribe to hear when it changes.",
            mime_type="application/json")])

    async def _read_resource(self, ctx: ServerRequestContext[Any, Any],
                             params: types.ReadResourceRequestParams
                             ) -> types.ReadResourceResult:
        from handoff.mcp.render import brief_text

        ref = ref_of(str(params.uri))
        key, _ = self.caller(ctx)
        try:
            brief = (await self.gateway.client(key).context(ref, turns=20)).brief
        except UnauthorizedError as exc:
            await self.ender(ctx)()
            raise _rpc_error(exc) from None
        except ClientError as exc:
            raise _rpc_error(exc) from None
        uri = str(params.uri)
        return types.ReadResourceResult(contents=[
            types.TextResourceContents(uri=uri, mime_type="application/json",
                                       text=brief.model_dump_json()),
            types.TextResourceContents(uri=uri, mime_type="text/plain",
                                       text=brief_text(brief))])

    # -- subscriptions ----------------------------------------------------------------------

    async def _open(self, ctx: ServerRequestContext[Any, Any], uri: str) -> EventStream:
        """The customer's REST event stream, opened (so its refusals are this request's)."""
        ref = ref_of(uri)
        key, _ = self.caller(ctx)
        stream = self.gateway.client(key, streams=True).events(ref)
        try:
            await stream.open()
        except UnauthorizedError as exc:
            await self.ender(ctx)()
            raise _rpc_error(exc) from None
        except ClientError as exc:
            raise _rpc_error(exc) from None
        return stream

    async def _subscribe(self, ctx: ServerRequestContext[Any, Any],
                         params: types.SubscribeRequestParams) -> types.EmptyResult:
        """2025-era subscriptions: `notifications/resources/updated` on the session's stream."""
        uri = str(params.uri)
        connection = _connection(ctx)
        watches: dict[str, asyncio.Task[None]] | None = connection.state.get(WATCHES)
        if watches is None:
            watches = connection.state[WATCHES] = {}
            connection.exit_stack.callback(_cancel_all, watches)
        if uri in watches:
            return types.EmptyResult()
        stream = await self._open(ctx, uri)
        session = ctx.session

        async def changed() -> None:
            await session.send_resource_updated(uri)

        watches[uri] = asyncio.create_task(_follow(stream, changed, self.ender(ctx)),
                                           name="handoff-mcp-subscription")
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: ServerRequestContext[Any, Any],
                           params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        watches = _connection(ctx).state.get(WATCHES) or {}
        task = watches.pop(str(params.uri), None)
        if task is not None:
            task.cancel()
        return types.EmptyResult()

    async def _listen(self, ctx: ServerRequestContext[Any, Any],
                      params: types.SubscriptionsListenRequestParams
                      ) -> types.SubscriptionsListenResult:
        """2026-era subscriptions: the listen request's own stream carries the updates, for as
        long as the client keeps it open."""
        bus = InMemorySubscriptionBus()
        handler = ListenHandler(bus, max_subscriptions=1)
        end = self.ender(ctx)

        async def ended() -> None:
            handler.close()
            await end()

        tasks: list[asyncio.Task[None]] = []
        try:
            for uri in params.notifications.resource_subscriptions or ():
                stream = await self._open(ctx, uri)

                async def changed(uri: str = uri) -> None:
                    await bus.publish(ResourceUpdated(uri=uri))

                tasks.append(asyncio.create_task(_follow(stream, changed, ended)))
            return await handler(ctx, params)
        finally:
            for task in tasks:
                task.cancel()


async def _follow(stream: EventStream, changed: Callable[[], Awaitable[None]],
                  ended: Ender) -> None:
    """Announce every change of one customer until cancelled, or end the session when the
    service says the key no longer works."""
    try:
        async with stream:
            async for event in stream:
                if event.type == ACCESS_ENDED:
                    await ended()
                    return
                await changed()
    except UnauthorizedError:
        await ended()
    except ClientError as exc:
        log.warning("a context subscription stopped: %s", problem_text(exc))


def _cancel_all(watches: dict[str, asyncio.Task[None]]) -> None:
    for task in watches.values():
        task.cancel()
    watches.clear()


def _rpc_error(exc: ClientError) -> MCPError:
    # The caller's own mistake (what it named, or what its key may do) is theirs to fix; only
    # the service failing is an internal error.
    status = exc.status if isinstance(exc, ProblemError) else 500
    code = (types.INVALID_PARAMS if status in (400, 404, 422)
            else types.INVALID_REQUEST if status < 500 else types.INTERNAL_ERROR)
    return MCPError(code, problem_text(exc))


def access_token(key: str, caller: Caller) -> AccessToken:
    """How an authenticated HTTP request carries its key and caller to the handlers."""
    return AccessToken(token=key, client_id=caller.id, scopes=[caller.role],
                       claims={"tenant": caller.tenant})
