"""Path and query parameters, checked the same way bodies are."""

from __future__ import annotations

import re

from aiohttp import web

from handoff.api.remote import client_address
from handoff.api.state import DEPS, PRINCIPAL
from handoff.kernel.errors import Unprocessable
from handoff.services.audit import Viewer
from handoff.services.privacy import DOT_NAMES

# Lone surrogates are what header bytes that are not UTF-8 become: never a name.
NAME = re.compile(r"^[^\x00-\x1f\x7f\ud800-\udfff]{1,128}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# The same rules as OpenAPI parameter schemas, so the document says what the checks accept.
NAME_SCHEMA: dict[str, object] = {"type": "string", "pattern": NAME.pattern}
SLUG_SCHEMA: dict[str, object] = {"type": "string", "pattern": SLUG.pattern}


def name(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not NAME.match(value):
        raise Unprocessable(f"{key} must be 1 to 128 printable characters",
                            [{"loc": ["path", key], "msg": "invalid"}])
    if value in DOT_NAMES:  # a URL cannot carry it: clients and proxies resolve it away
        raise Unprocessable(f"{key} cannot be '.' or '..'",
                            [{"loc": ["path", key], "msg": "invalid"}])
    return value


def integer(request: web.Request, key: str, *, default: int, low: int, high: int) -> int:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Unprocessable(f"{key} must be an integer from {low} to {high}",
                            [{"loc": ["query", key], "msg": f"between {low} and {high}"}])
    return value


def choice(request: web.Request, key: str, options: tuple[str, ...], default: str) -> str:
    value = request.query.get(key) or default
    if value not in options:
        raise Unprocessable(f"{key} must be one of {', '.join(options)}",
                            [{"loc": ["query", key], "msg": "unknown value"}])
    return value


def slug(request: web.Request, key: str) -> str | None:
    value = request.query.get(key) or None
    if value is not None and not SLUG.match(value):
        raise Unprocessable(f"{key} must be lower-case letters, digits, '.', '_' or '-'",
                            [{"loc": ["query", key], "msg": "invalid"}])
    return value


def cursor(request: web.Request, key: str = "before") -> str | None:
    value = request.query.get(key) or None
    if value is not None and not NAME.match(value):
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", key], "msg": "invalid cursor"}])
    return value


def viewer(request: web.Request) -> Viewer:
    """Who is reading, for the audit trail: the panel token's agent, else `X-Agent-Id` (if
    given), and the client's address."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.agent_id is not None:
        return Viewer(agent_id=principal.agent_id, address=client_address(request))
    agent = request.headers.get("X-Agent-Id") or None
    if agent is not None and not NAME.match(agent):
        raise Unprocessable("X-Agent-Id must be 1 to 128 printable characters",
                            [{"loc": ["header", "X-Agent-Id"], "msg": "invalid"}])
    if agent is not None:
        agent = request.app[DEPS].privacy.safe_id(agent)
    return Viewer(agent_id=agent, address=client_address(request))
