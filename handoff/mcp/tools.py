"""The MCP tools: each is one or two REST calls made with the caller's own key.

A tool names the REST routes it calls, and the roles that may use it are read from those routes'
own declarations (the table the service authorises with), so a key is offered exactly the tools
its role could use over REST. The listing is a courtesy only: whatever is called, the service
decides, as for any REST request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from handoff.client import HandoffClient
from handoff.mcp.render import brief_text
from schemas.brief import AcceptResult, Brief
from schemas.common import Page
from schemas.conversations import AppendResult
from schemas.handoffs import Handoff
from schemas.mcp import (
    AcceptHandoffIn,
    AppendTurnsIn,
    ContextIn,
    HandoffRef,
    KnownValue,
    QueueIn,
    ReaskIn,
    ReaskResult,
    ReaskWarning,
    RequestHandoffIn,
)

Answer = tuple[BaseModel, str]
Run = Callable[[HandoffClient, Any], Awaitable[Answer]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: type[BaseModel]
    result: type[BaseModel]
    routes: tuple[tuple[str, str], ...]  # (method, path template) of every REST call it makes
    run: Run

    def input_schema(self) -> dict[str, Any]:
        return _schema(self.params, "validation")

    def output_schema(self) -> dict[str, Any]:
        return _schema(self.result, "serialization")


@cache
def _schema(model: type[BaseModel], mode: str) -> dict[str, Any]:
    return model.model_json_schema(mode="validation" if mode == "validation"
                                   else "serialization")


def _json(model: BaseModel) -> str:
    return model.model_dump_json(exclude_none=True)


async def get_customer_context(client: HandoffClient, args: ContextIn) -> Answer:
    brief = (await client.context(args.ref, turns=args.turns)).brief
    return brief, brief_text(brief)


async def append_turns(client: HandoffClient, args: AppendTurnsIn) -> Answer:
    body = args.model_dump(exclude_unset=True, exclude={"conversation_id"})
    result = await client.append_turns(args.conversation_id, body)
    return result, (f"{result.appended} turn(s) appended, {result.duplicates} already there, "
                    f"customer {result.customer_id}")


async def request_handoff(client: HandoffClient, args: RequestHandoffIn) -> Answer:
    body = args.model_dump(exclude_unset=True, exclude={"idempotency_key"})
    for field in ("continuation", "priority"):  # defaults of this tool, not of the route
        body.setdefault(field, getattr(args, field))
    handoff = await client.request_handoff(body, idempotency_key=args.idempotency_key)
    code = (f"; continuation code {handoff.continuation_code} (tell the customer: they enter "
            f"it on the phone line to be put through with everything said here)"
            if handoff.continuation_code else "")
    return handoff, f"Hand-off {handoff.id} {handoff.status} in queue {handoff.queue}{code}"


async def check_reask(client: HandoffClient, args: ReaskIn) -> Answer:
    check = await client.reask_check(args.ref, args.text)
    if not check.reasks:
        return ReaskResult(ok=True, reasks=[]), "OK: this asks for nothing the customer gave."
    # What the customer gave is read from the brief, where reads are audited (as the panel does).
    brief = (await client.context(args.ref, turns=0)).brief
    known = _known_values(brief)
    warnings = [ReaskWarning(topic=r.topic, phrase=r.phrase,
                             known=[KnownValue(key=k, value=known.get(k)) for k in r.known])
                for r in check.reasks]
    lines = [f"Do not ask for the {w.topic.replace('_', ' ')}: the customer already gave it ("
             + ", ".join(f"{k.key} {k.value}" if k.value is not None else k.key
                         for k in w.known) + ")." for w in warnings]
    return ReaskResult(ok=False, reasks=warnings), "WARNING: " + " ".join(lines)


def _known_values(brief: Brief) -> dict[str, Any]:
    values: dict[str, Any] = {i.kind: i.value for i in reversed(brief.customer.identities)}
    values.update({key: fact.value for key, fact in brief.facts.items()})
    return values


async def get_handoff(client: HandoffClient, args: HandoffRef) -> Answer:
    handoff = await client.get_handoff(args.handoff_id)
    return handoff, _json(handoff)


async def list_queue(client: HandoffClient, args: QueueIn) -> Answer:
    page = await client.list_handoffs(queue=args.queue, limit=args.limit)
    lines = [f"{h.id} {h.status} queue {h.queue} priority {h.priority} reason {h.reason}"
             + (f": {h.summary}" if h.summary else "") for h in page.items]
    return page, "\n".join(lines) or "The queue is empty."


async def accept_handoff(client: HandoffClient, args: AcceptHandoffIn) -> Answer:
    accepted = await client.accept(args.handoff_id, args.agent_id)
    return accepted, (f"Accepted {accepted.handoff.id} for {accepted.handoff.agent_id}.\n"
                      + brief_text(accepted.context))


TOOLS: tuple[Tool, ...] = (
    Tool("get_customer_context",
         "The customer's context brief: verified identities (method, age, expiry), what not "
         "to ask, facts with where they came from, the journey across channels, flags, "
         "hand-offs and the last turns. Read it before asking the customer anything.",
         ContextIn, Brief, (("GET", "/v1/customers/{ref}/context"),), get_customer_context),
    Tool("append_turns",
         "Record turns of a conversation (yours and the customer's), with facts the customer "
         "gave. A retried call with the same turn ids adds nothing.",
         AppendTurnsIn, AppendResult,
         (("POST", "/v1/conversations/{conversation_id}/turns"),), append_turns),
    Tool("request_handoff",
         "Ask for a human agent. Answers the hand-off id and a continuation code the customer "
         "can enter on the phone line. Retry with the same idempotency_key.",
         RequestHandoffIn, Handoff, (("POST", "/v1/handoffs"),), request_handoff),
    Tool("check_reask",
         "Before asking the customer something, check whether they already gave it on any "
         "channel; a warning names the value they gave.",
         ReaskIn, ReaskResult,
         (("POST", "/v1/customers/{ref}/reask-check"), ("GET", "/v1/customers/{ref}/context")),
         check_reask),
    Tool("get_handoff", "One hand-off: its status, queue, agent and notes.",
         HandoffRef, Handoff, (("GET", "/v1/handoffs/{id}"),), get_handoff),
    Tool("list_queue", "Hand-offs waiting for an agent, most urgent and then oldest first.",
         QueueIn, Page[Handoff], (("GET", "/v1/handoffs"),), list_queue),
    Tool("accept_handoff",
         "Claim a hand-off for an agent; exactly one agent wins. Answers the hand-off and the "
         "customer's brief.",
         AcceptHandoffIn, AcceptResult, (("POST", "/v1/handoffs/{id}/accept"),), accept_handoff),
)
BY_NAME = {tool.name: tool for tool in TOOLS}


@cache
def route_roles() -> dict[tuple[str, str], frozenset[str]]:
    """Each REST route's roles, as the service declares and enforces them."""
    from handoff.app import ROUTES  # the whole service's route table; only needed here

    return {(e.method, e.path): e.roles for routes in ROUTES for e in routes.endpoints
            if e.roles is not None}


def roles_of(tool: Tool) -> frozenset[str]:
    """The roles that may make every REST call `tool` makes."""
    # Started from the routes themselves, so a role added to the service (supervisor, say) is
    # offered what its routes allow without being named here.
    table = route_roles()
    return frozenset.intersection(*(table[route] for route in tool.routes))


def tools_for(role: str) -> list[Tool]:
    """The tools a key of `role` is offered."""
    return [tool for tool in TOOLS if role in roles_of(tool)]


def dumps(model: BaseModel) -> dict[str, Any]:
    """Structured content: the model as JSON, exactly as the REST route answered it."""
    value: dict[str, Any] = json.loads(model.model_dump_json())
    return value
