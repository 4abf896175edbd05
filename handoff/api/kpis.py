"""Effort KPIs for supervisors: GET /v1/kpis."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from handoff.api import params
from handoff.api.bodies import render
from handoff.api.routing import Query, Routes
from handoff.api.state import DEPS, PRINCIPAL
from handoff.kernel.errors import Unprocessable
from handoff.services import kpis
from schemas.kpis import Bucket, Kpis

routes = Routes()
BUCKETS: tuple[Bucket, ...] = ("hour", "day")
MOMENT_SCHEMA: dict[str, object] = {"type": "string", "format": "date-time"}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _moment(request: web.Request, key: str) -> datetime | None:
    raw = request.query.get(key) or None
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Unprocessable(f"{key} must be an ISO 8601 date and time",
                            [{"loc": ["query", key], "msg": "not a date and time"}]) from None
    # A moment without an offset is read as UTC, like the buckets.
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= value < LATEST:  # the buckets around it must be dates too
        raise Unprocessable(f"{key} must be in the years 1970 to 9998",
                            [{"loc": ["query", key], "msg": "out of range"}])
    return value


@routes.route("GET", "/v1/kpis", roles=("supervisor", "admin"), response=Kpis, desk=True,
              summary="Effort KPIs of the tenant, per hour or UTC day, for one queue or all",
              query=(Query("from", "start (ISO 8601); the bucket holding it is the first; "
                                   "default: 24 hours or 7 days before `to`", MOMENT_SCHEMA),
                     Query("to", "end (ISO 8601, exclusive); default: the end of the current "
                                 "bucket", MOMENT_SCHEMA),
                     Query("bucket", "hour (default; at most 168) or day (at most 92)",
                           {"type": "string", "enum": list(BUCKETS)}),
                     Query("queue", "one queue; every queue when absent", params.SLUG_SCHEMA)))
async def read(request: web.Request) -> web.StreamResponse:
    bucket = params.choice(request, "bucket", BUCKETS, "hour")
    result = await kpis.read(
        request.app[DEPS], request[PRINCIPAL], bucket="day" if bucket == "day" else "hour",
        start=_moment(request, "from"), end=_moment(request, "to"),
        queue=params.slug(request, "queue"))
    return render(request, result)
