"""Operations: liveness, readiness, metrics, the API description and its docs page."""

from __future__ import annotations

import hmac
from importlib import resources

from aiohttp import web

from handoff.api import apidocs
from handoff.api.routing import Routes
from handoff.api.state import DEPS, OPENAPI, SETTINGS
from handoff.kernel import metrics
from handoff.kernel.errors import NotFound, StoreUnavailable, Unauthorized
from handoff.kernel.settings import SENTINEL_SCHEME
from handoff.services import kpis
from schemas.common import Health

routes = Routes()
# Browsers ask for it with every page (the panel, /docs): answered, it is no 404 in the log.
FAVICON = resources.files("handoff").joinpath("desk", "favicon.ico").read_bytes()


@routes.route("GET", "/healthz", roles=None, response=Health, summary="The process is alive")
async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


@routes.route("GET", "/readyz", roles=None, response=Health,
              summary="Ready to serve: Redis answers (with sentinels: a primary does)")
async def readyz(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[DEPS].store.ping()
    except StoreUnavailable:
        # With sentinels, a failover in progress is the usual reason: say so.
        sentinels = (request.app[SETTINGS].store_url or "").startswith(SENTINEL_SCHEME)
        state = "no primary" if sentinels else "down"
        return web.json_response({"status": "unavailable", "redis": state}, status=503,
                                 headers={"Retry-After": "2"})
    return web.json_response({"status": "ok", "redis": "up"})


@routes.route("GET", "/openapi.json", roles=None, summary="This API, as OpenAPI 3.1")
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI])


@routes.route("GET", "/metrics", roles=None, produces="text/plain",
              summary="Prometheus metrics, summed over every worker process")
async def prometheus(request: web.Request) -> web.StreamResponse:
    token = request.app[SETTINGS].metrics_token
    if token is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode("utf-8", "surrogateescape"),
            f"Bearer {token.get_secret_value()}".encode()):
        # Labels name tenants and queues: with a token set, only the scraper holding it reads.
        raise Unauthorized("send Authorization: Bearer <HANDOFF_METRICS_TOKEN>")
    await kpis.sample_store(request.app[DEPS])
    # The exposition format's own type carries a `version=` parameter aiohttp will not split.
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


@routes.route("GET", "/docs", roles=None, produces="text/html",
              summary="The API reference: Swagger UI over /openapi.json, no external assets")
async def docs(request: web.Request) -> web.StreamResponse:
    return web.Response(text=apidocs.PAGE, content_type="text/html",
                        headers={"Content-Security-Policy": apidocs.POLICY})


@routes.route("GET", "/docs/assets/{name}", roles=None, produces="application/octet-stream",
              summary="The docs page's scripts and styles", in_schema=False)
async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == apidocs.INIT_NAME:
        return web.Response(text=apidocs.INIT, content_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})
    path = apidocs.asset(name)
    if path is None:
        raise NotFound("no such file")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@routes.route("GET", "/favicon.ico", roles=None, produces="image/x-icon", in_schema=False,
              summary="The icon browsers show for the agent panel and the docs page")
async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(body=FAVICON, content_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})
