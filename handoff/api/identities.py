"""Verifications and continuation codes: how channels prove who the customer is."""

from __future__ import annotations

from aiohttp import web

from handoff.api.bodies import parse, render
from handoff.api.remote import client_address
from handoff.api.routing import Routes
from handoff.api.state import DEPS, PRINCIPAL
from handoff.services import continuations, verification
from schemas.handoffs import RedeemIn, RedeemResult
from schemas.verification import VerifyIn, VerifyResult

routes = Routes()


@routes.route("POST", "/v1/verifications", roles=("ivr", "agent"), body=VerifyIn,
              response=VerifyResult,
              summary="Record a verified identity (may merge with its holder)")
async def verify(request: web.Request) -> web.StreamResponse:
    body = await parse(request, VerifyIn)
    return render(request, await verification.verify(request.app[DEPS], request[PRINCIPAL],
                                                     body))


@routes.route("POST", "/v1/continuations/{code}/redeem", roles=("ivr",), body=RedeemIn,
              response=RedeemResult,
              summary="Join the caller to the customer (and hand-off) a code was issued for")
async def redeem(request: web.Request) -> web.StreamResponse:
    body = await parse(request, RedeemIn)
    result = await continuations.redeem(request.app[DEPS], request[PRINCIPAL],
                                        request.match_info["code"], body,
                                        address=client_address(request))
    return render(request, result)
