"""Operations: liveness, readiness, the API description."""

from __future__ import annotations

from aiohttp import web

from handoff.api.routing import Routes
from handoff.api.state import DEPS, OPENAPI
from handoff.errors import StoreUnavailable
from schemas.common import Health

routes = Routes()


@routes.route("GET", "/healthz", roles=None, response=Health, summary="The process is alive")
async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


@routes.route("GET", "/readyz", roles=None, response=Health,
              summary="Ready to serve: Redis answers")
async def readyz(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[DEPS].store.ping()
    except StoreUnavailable:
        return web.json_response({"status": "unavailable", "redis": "down"}, status=503,
                                 headers={"Retry-After": "2"})
    return web.json_response({"status": "ok", "redis": "up"})


@routes.route("GET", "/openapi.json", roles=None, summary="This API, as OpenAPI 3.1")
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI])


DOCS = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>handoff API</title><style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .3em}h2{margin-top:2rem}.m{font-weight:700;width:4rem;
display:inline-block}</style></head><body><h1>handoff API</h1>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a>.</p>
<div id="ops">Loading…</div><script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{const el=document.getElementById('ops');
el.textContent='';for(const [path,ops] of Object.entries(doc.paths)){for(const [m,op] of
Object.entries(ops)){const p=document.createElement('p');const b=document.createElement('span');
b.className='m';b.textContent=m.toUpperCase();const c=document.createElement('code');
c.textContent=path;p.append(b,c,document.createTextNode(' '+op.summary+
(op.description?' ('+op.description+')':'')));el.append(p);}}});</script></body></html>"""


@routes.route("GET", "/docs", roles=None, produces="text/html",
              summary="Human-readable API reference (no external assets)")
async def docs(request: web.Request) -> web.StreamResponse:
    return web.Response(text=DOCS, content_type="text/html")

