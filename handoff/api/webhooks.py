"""Operators: outbound webhook subscriptions and their dead letters."""

from __future__ import annotations

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import parse, render
from handoff.api.routing import Query, Routes
from handoff.api.state import DEPS, PRINCIPAL
from handoff.services import webhooks
from schemas.common import Page
from schemas.webhooks import DeadLetter, NewWebhook, Redelivery, Webhook, WebhookIn

routes = Routes()


@routes.route("GET", "/v1/admin/webhooks", roles=("admin",), response=Page[Webhook],
              summary="The tenant's webhook subscriptions (never their signing secrets)")
async def list_webhooks(request: web.Request) -> web.StreamResponse:
    return render(request, await webhooks.listing(request.app[DEPS], request[PRINCIPAL]))


@routes.route("POST", "/v1/admin/webhooks", roles=("admin",), body=WebhookIn,
              response=NewWebhook, status=201,
              summary="Subscribe a URL to event types; its signing secret is in this answer only")
async def create_webhook(request: web.Request) -> web.StreamResponse:
    body = await parse(request, WebhookIn)
    return render(request, await webhooks.create(request.app[DEPS], request[PRINCIPAL], body),
                  status=201)


@routes.route("DELETE", "/v1/admin/webhooks/{id}", roles=("admin",), response=Webhook,
              summary="Unsubscribe; its queued deliveries and dead letters are dropped")
async def delete_webhook(request: web.Request) -> web.StreamResponse:
    return render(request, await webhooks.delete(request.app[DEPS], request[PRINCIPAL],
                                                 request.match_info["id"]))


@routes.route("POST", "/v1/admin/webhooks/{id}/rotate", roles=("admin",), response=NewWebhook,
              summary="A new signing secret, shown this once; later deliveries use it")
async def rotate_webhook(request: web.Request) -> web.StreamResponse:
    return render(request, await webhooks.rotate(request.app[DEPS], request[PRINCIPAL],
                                                 request.match_info["id"]))


@routes.route("GET", "/v1/admin/webhooks/{id}/dead-letters", roles=("admin",),
              response=Page[DeadLetter],
              summary="Deliveries that failed every attempt, newest event first",
              query=(Query("before", "the `next` of the previous page",
                           {"type": "string", "pattern": webhooks.DELIVERY_ID.pattern}),
                     Query("limit", "page size (default 100, at most 500)",
                           {"type": "integer", "minimum": 1, "maximum": 500})))
async def dead_letters(request: web.Request) -> web.StreamResponse:
    page = await webhooks.dead_letters(
        request.app[DEPS], request[PRINCIPAL], request.match_info["id"],
        request.query.get("before") or None,
        params.integer(request, "limit", default=100, low=1, high=500))
    return render(request, page)


@routes.route("POST", "/v1/admin/webhooks/{id}/dead-letters/{delivery_id}/redeliver",
              roles=("admin",), response=Redelivery, status=202,
              summary="Send a dead letter again (same delivery id), attempts counted afresh")
async def redeliver(request: web.Request) -> web.StreamResponse:
    result = await webhooks.redeliver(request.app[DEPS], request[PRINCIPAL],
                                      request.match_info["id"],
                                      request.match_info["delivery_id"])
    return render(request, result, status=202)
