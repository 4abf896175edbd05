"""Operators: API keys, erasure, the audit trail."""

from __future__ import annotations

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import parse, render
from handoff.api.routing import Query, Routes
from handoff.api.state import DEPS, PRINCIPAL
from handoff.services import audit, erasure, keyadmin
from schemas.admin import ApiKey, AuditEntry, Erasure, KeyIn, NewKey, RotateIn
from schemas.common import Page

routes = Routes()


@routes.route("GET", "/v1/admin/keys", roles=("admin",), response=Page[ApiKey],
              summary="The tenant's API keys (never their secrets)")
async def list_keys(request: web.Request) -> web.StreamResponse:
    items = await keyadmin.listing(request.app[DEPS], request[PRINCIPAL])
    return render(request, Page[ApiKey](items=items, next=None))


@routes.route("POST", "/v1/admin/keys", roles=("admin",), body=KeyIn, response=NewKey,
              status=201, summary="Create a key; its secret is in this answer only")
async def create_key(request: web.Request) -> web.StreamResponse:
    body = await parse(request, KeyIn)
    return render(request, await keyadmin.create(request.app[DEPS], request[PRINCIPAL], body),
                  status=201)


@routes.route("DELETE", "/v1/admin/keys/{id}", roles=("admin",), response=ApiKey,
              summary="Revoke a key, on every process at once")
async def revoke_key(request: web.Request) -> web.StreamResponse:
    return render(request, await keyadmin.revoke(request.app[DEPS], request[PRINCIPAL],
                                                request.match_info["id"]))


@routes.route("POST", "/v1/admin/keys/{id}/rotate", roles=("admin",), body=RotateIn,
              body_optional=True, response=NewKey, status=201,
              summary="Replace a key; the old one stops after grace_seconds (default at once)")
async def rotate_key(request: web.Request) -> web.StreamResponse:
    body = await parse(request, RotateIn, optional=True)
    return render(request, await keyadmin.rotate(request.app[DEPS], request[PRINCIPAL],
                                                request.match_info["id"], body), status=201)


@routes.route("DELETE", "/v1/customers/{ref}", roles=("admin",), response=Erasure,
              summary="Erase everything of a customer (and of customers merged into it)")
async def erase_customer(request: web.Request) -> web.StreamResponse:
    return render(request, await erasure.erase(request.app[DEPS], request[PRINCIPAL],
                                               request.match_info["ref"]))


@routes.route("GET", "/v1/admin/audit", roles=("admin",), response=Page[AuditEntry],
              summary="Who read which customer's context, when, from where; newest first",
              query=(Query("customer", "a customer id or kind:value identity"),
                     Query("before", "the `next` of the previous page", params.NAME_SCHEMA),
                     Query("limit", "page size (default 100, at most 500)",
                           {"type": "integer", "minimum": 1, "maximum": 500})))
async def read_audit(request: web.Request) -> web.StreamResponse:
    page = await audit.read(request.app[DEPS], request[PRINCIPAL],
                            request.query.get("customer") or None, params.cursor(request),
                            params.integer(request, "limit", default=100, low=1, high=500))
    return render(request, page)
