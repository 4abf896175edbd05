"""The embeddable agent panel: its token, its re-ask check, and its static pages at /desk/ (and
the supervisor's view at /desk/supervisor)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from handoff.api.bodies import parse, render
from handoff.api.routing import Routes
from handoff.api.state import DEPS, PRINCIPAL, SETTINGS
from handoff.kernel.errors import NotFound
from handoff.kernel.timefmt import moment
from handoff.services import desktokens, reask
from handoff.services.deps import Principal
from schemas.desk import DeskToken, Reask, ReaskCheck, ReaskCheckIn, TokenIn

routes = Routes()
ASSETS = {"index.html": "text/html", "panel.js": "text/javascript", "desk.js": "text/javascript",
          "desk.css": "text/css",
          "supervisor.html": "text/html", "supervisor.js": "text/javascript",
          "supervisor.css": "text/css"}
# Served when the package has them: the supervisor view loads its effort charts from here.
OPTIONAL_ASSETS = {"supervisor-kpis.js": "text/javascript"}
# Pages by the name in their URL (`/desk/supervisor`).
PAGES = {"supervisor": "supervisor.html"}
# Which page a panel token of each role opens (`/desk/` for agents).
VIEWS = {"supervisor": "supervisor"}


def panel_url(request: web.Request, token: str, handoff_id: str | None = None, *,
              view: str = "") -> str:
    """Where the panel (or the supervisor's `view`) opens signed in. The token rides in the
    fragment, which browsers never send to a server, so it stays out of access and proxy
    logs."""
    base = (request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}").rstrip("/")
    return (f"{base}/desk/{view}#token={token}"
            + (f"&handoff={handoff_id}" if handoff_id else ""))


def token_for(request: web.Request, principal: Principal, agent_id: str,
              minutes: int | None = None) -> tuple[str, int]:
    """A panel token for `agent_id`; one minted from a panel token lives no longer than it."""
    deps = request.app[DEPS]
    lifetime = minutes or deps.settings.desk_token_minutes
    expires = deps.now_ms() + lifetime * 60_000
    if principal.expires_ms is not None:
        expires = min(expires, principal.expires_ms)
    return desktokens.mint(deps, principal, agent_id, expires_ms=expires), expires


@routes.route("POST", "/v1/desk/tokens", roles=("agent", "supervisor"), body=TokenIn,
              response=DeskToken,
              summary="A short-lived token for one person: the agent panel at /desk/, or a "
                      "supervisor key's view at /desk/supervisor")
async def mint_token(request: web.Request) -> web.StreamResponse:
    principal = request[PRINCIPAL]
    body = request.app[DEPS].privacy.safe_ids(await parse(request, TokenIn), "agent_id")
    token, expires = token_for(request, principal, body.agent_id, body.minutes)
    return render(request, DeskToken(
        token=token, tenant=principal.tenant, agent_id=body.agent_id,
        expires_at=moment(expires),
        panel_url=panel_url(request, token, view=VIEWS.get(principal.role, ""))))


@routes.route("POST", "/v1/customers/{ref}/reask-check", roles=("bot", "ivr", "agent"), desk=True,
              body=ReaskCheckIn, response=ReaskCheck,
              summary="Would this reply ask the customer for something the context has?")
async def reask_check(request: web.Request) -> web.StreamResponse:
    body = await parse(request, ReaskCheckIn)
    hits = await reask.check(request.app[DEPS], request[PRINCIPAL], request.match_info["ref"],
                             body.text)
    return render(request, ReaskCheck(reasks=[
        Reask(topic=h.topic, phrase=h.phrase, known=list(dict.fromkeys(k.key for k in h.known)))
        for h in hits]))


def install_static(app: web.Application) -> None:
    """Serve the panel's files (read once) at /desk/; they hold no data and need no key."""
    folder = resources.files("handoff").joinpath("desk")
    kinds = {**ASSETS, **{n: k for n, k in OPTIONAL_ASSETS.items()
                          if folder.joinpath(n).is_file()}}
    files = {name: folder.joinpath(name).read_bytes() for name in kinds}
    ancestors = app[SETTINGS].desk_frame_ancestors
    headers = {
        # The page loads nothing from elsewhere, and only talks to this service.
        "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                   "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                   f"form-action 'none'; frame-ancestors {ancestors}",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache"}

    async def page(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        name = PAGES.get(name, name)
        if name not in files:
            raise NotFound("no such panel file")
        return web.Response(body=files[name], headers=headers,
                            content_type=kinds[name], charset="utf-8")

    async def slash(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/desk/")

    app.add_routes([web.get("/desk", slash), web.get("/desk/", page),
                    web.get("/desk/{name}", page)])
