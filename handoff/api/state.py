"""Typed application and request state."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiohttp import web

from handoff.api.backpressure import Backpressure
from handoff.kernel.memo import Memo
from handoff.kernel.settings import Settings
from handoff.services.abuse import AuthFailures
from handoff.services.deps import Deps, Principal
from handoff.services.events import Lifetimes
from handoff.services.flags import Lexicon

SETTINGS = web.AppKey("settings", Settings)
DEPS = web.AppKey("deps", Deps)
LEXICON = web.AppKey("lexicon", Lexicon)
STREAMS = web.AppKey("streams", weakref.WeakSet[web.StreamResponse])
CLOSING = web.AppKey("closing", asyncio.Event)
PRINCIPAL = web.RequestKey("principal", Principal)
OPENAPI = web.AppKey("openapi", dict[str, Any])
AUTH_FAILURES = web.AppKey("auth_failures", AuthFailures)
BACKPRESSURE = web.AppKey("backpressure", Backpressure)
LIFETIMES = web.AppKey("lifetimes", Lifetimes)
REQUEST_ID = web.RequestKey("request_id", str)
# The client's address, worked out once per request (see handoff.api.remote); "" if unknown.
CLIENT_ADDRESS = web.RequestKey("client_address", str)
PREPARED = web.RequestKey("prepared", web.StreamResponse)
# Bodies of recently sent briefs by (tenant, customer, turns, content type), with their ETag.
RENDERED_BRIEFS = web.AppKey("rendered_briefs", Memo[tuple[str, str, int, str], tuple[str, bytes]])
