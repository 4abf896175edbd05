"""The application factory: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from adapters import ADAPTERS
from handoff.api import (
    access,
    admin,
    alerts,
    conversations,
    customers,
    desk,
    events,
    handoffs,
    identities,
    kpis,
    ops,
    webhooks,
    whoami,
)
from handoff.api.backpressure import Backpressure
from handoff.api.middleware import pipeline
from handoff.api.openapi import document
from handoff.api.routing import Routes
from handoff.api.state import (
    AUTH_FAILURES,
    BACKPRESSURE,
    CLOSING,
    DEPS,
    LEXICON,
    LIFETIMES,
    OPENAPI,
    RENDERED_BRIEFS,
    SETTINGS,
    STREAMS,
)
from handoff.kernel import logs, metrics
from handoff.kernel.errors import HandoffError
from handoff.kernel.memo import Memo
from handoff.kernel.settings import Settings
from handoff.runtime.outbound import Sender
from handoff.services import handoffs as handoff_service
from handoff.services.abuse import AuthFailures
from handoff.services.delivery import Deliverer
from handoff.services.deps import Deps
from handoff.services.events import Lifetimes
from handoff.services.flags import Lexicon
from handoff.store import Store, operations
from handoff.store.connection import connect

log = logs.logger("handoff")
# What the service takes for "now" instead of the wall clock (tests move it).
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")
# Order matters where paths overlap: /v1/handoffs/events before /v1/handoffs/{id}.
ROUTES: tuple[Routes, ...] = (events.routes, conversations.routes, customers.routes,
                              identities.routes, handoffs.routes, admin.routes, ops.routes,
                              webhooks.routes, desk.routes, whoami.routes, kpis.routes,
                              alerts.routes,
                              *(adapter.routes for adapter in ADAPTERS))


def create_app(settings: Settings, *, clock: Callable[[], int] | None = None
               ) -> web.Application:
    """A ready-to-run application; `settings.redis_url` (or `redis_sentinels`) must point at
    a Redis server. `clock` (epoch milliseconds) replaces the wall clock, for tests."""
    if not settings.store_url:
        raise ValueError("settings.redis_url is required (handoff serve starts one for you)")
    pressure = Backpressure(settings)
    app = web.Application(middlewares=[pipeline(pressure,
                                                replica_ack=settings.write_ack == "replica")],
                          client_max_size=settings.max_body_bytes,
                          handler_args={"max_field_size": 16384})
    app[BACKPRESSURE] = pressure
    if clock is not None:
        app[CLOCK] = clock
    app[SETTINGS] = settings
    app[LEXICON] = Lexicon(settings)
    app[STREAMS] = weakref.WeakSet()
    app[RENDERED_BRIEFS] = Memo(size=settings.brief_cache_size, ttl=300.0)
    app[CLOSING] = asyncio.Event()
    for routes in ROUTES:
        routes.install(app)
    desk.install_static(app)
    app[OPENAPI] = document([e for r in ROUTES for e in r.endpoints])
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_invalidations)
    app.cleanup_ctx.append(_sweeper)
    app.cleanup_ctx.append(_metrics)
    app.on_response_prepare.append(access.on_prepare)
    app.cleanup_ctx.append(_webhook_deliveries)
    app.on_shutdown.append(_close_streams)
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = settings.store_url
    assert url is not None
    client = connect(url, cluster=settings.redis_cluster,
                     timeout=settings.redis_timeout,
                     max_connections=settings.redis_max_connections)
    # For the invalidation follower's XREAD BLOCK; each event stream makes its own connection
    # like these and closes it when it ends (see handoff.store.events).
    blocking = connect(url, cluster=settings.redis_cluster,
                       timeout=settings.redis_timeout, max_connections=4, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=settings.events_maxlen)
    clock = app.get(CLOCK)
    app[DEPS] = (Deps(store=store, settings=settings) if clock is None
                 else Deps(store=store, settings=settings, clock=clock))
    app[LIFETIMES] = Lifetimes(app[DEPS])
    app[AUTH_FAILURES] = AuthFailures(store, settings.auth_failures_per_minute)
    yield
    await store.close()


async def _invalidations(app: web.Application) -> AsyncIterator[None]:
    """Forget revoked keys and erased customers as soon as any process says so."""
    store = app[DEPS].store

    async def run() -> None:
        while True:
            try:
                await store.notices.follow_invalidations()
            except HandoffError as exc:
                log.warning("invalidation stream unavailable (%s); retrying", exc.detail)
                await asyncio.sleep(1.0)

    task = asyncio.create_task(run(), name="handoff-invalidations")
    yield
    await _stop(task)


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Expire overdue pending hand-offs in the background; every process may run it."""
    async def run() -> None:
        deps = app[DEPS]
        while True:
            await asyncio.sleep(deps.settings.sweep_seconds)
            try:
                for tenant in await deps.store.tenants():
                    await handoff_service.expire_due(deps, tenant)
            except HandoffError as exc:
                log.warning("hand-off expiry sweep skipped: %s", exc.detail)

    task = asyncio.create_task(run(), name="handoff-expiry-sweep")
    yield
    await _stop(task)


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    """Count this process among the live ones and time its store operations."""
    operations.observe_with(metrics.store_operation)
    metrics.PROCESSES.inc()
    yield
    metrics.flush()
    metrics.PROCESSES.dec()

async def _webhook_deliveries(app: web.Application) -> AsyncIterator[None]:
    """Send queued webhook deliveries; every process may run this (claims are leased)."""
    sender = Sender(app[SETTINGS])
    task = asyncio.create_task(Deliverer(app[DEPS], sender.post).run(),
                               name="handoff-webhook-deliveries")
    yield
    await _stop(task)
    await sender.close()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait until it has stopped.

    Cancelling once is not enough on Python 3.11: its `asyncio.wait_for`, which redis-py wraps
    every send in when a socket timeout is set, swallows a cancellation that arrives just as the
    send completes, and the task's loop would then run on and the shutdown wait forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_streams(app: web.Application) -> None:
    """Let live event streams say goodbye (with a resume id) before the server stops."""
    app[CLOSING].set()
