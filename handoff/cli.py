"""`handoff serve | keys create | demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from aiohttp import web

from handoff.app import create_app
from handoff.embedded import EmbeddedRedis
from handoff.services import apikeys
from handoff.settings import Settings
from handoff.store import Store
from handoff.store.connection import connect
from handoff.workers import supervise


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                   ("port", getattr(args, "port", None)),
                                   ("data_dir", getattr(args, "data_dir", None))) if v is not None}
    return Settings(**overrides)


def _store_for(settings: Settings) -> tuple[AbstractContextManager[object], str]:
    """The Redis to use: HANDOFF_REDIS_URL, or the embedded one for the data folder."""
    if settings.redis_url:
        return nullcontext(), settings.redis_url
    embedded = EmbeddedRedis(settings.data_dir)
    return embedded, embedded.url


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    embedded, url = _store_for(settings)
    with embedded:
        if isinstance(embedded, EmbeddedRedis):
            logging.getLogger("handoff").info("embedded Redis in %s", embedded.data_dir)
        if args.workers > 1:
            return supervise(args.workers, ["--host", settings.host, "--port",
                                            str(settings.port)], url)
        app = create_app(settings.model_copy(update={"redis_url": url}))
        web.run_app(app, host=settings.host, port=settings.port, shutdown_timeout=10,
                    reuse_port=args.reuse_port or None,
                    print=lambda msg: print(msg, flush=True), access_log=None)
    return 0


async def _create_key(url: str, settings: Settings, tenant: str, role: str, name: str
                      ) -> tuple[str, dict[str, str]]:
    client = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                     max_connections=4)
    blocking = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                       max_connections=1, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=settings.events_maxlen)
    try:
        return await apikeys.create(store, tenant=tenant, role=role, name=name,
                                    now_ms=int(time.time() * 1000))
    finally:
        await store.close()


def keys_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    embedded, url = _store_for(settings)
    try:
        with embedded:
            secret, record = asyncio.run(_create_key(url, settings, args.tenant, args.role,
                                                     args.name or ""))
    except ValueError as exc:
        print(f"handoff: {exc}", file=sys.stderr)
        return 2
    print(f"created {record['id']} for tenant {record['tenant']} with role {record['role']};"
          " the key is shown once:")
    print(secret)
    return 0


def demo(args: argparse.Namespace) -> int:
    from handoff.demo import run

    return run(_settings(args), url=args.url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handoff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the service (embedded Redis unless HANDOFF_REDIS_URL)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=serve)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys", required=True)
    p = keys.add_parser("create", help="create a key; prints it as the last line")
    p.add_argument("--tenant", required=True)
    p.add_argument("--role", required=True, choices=apikeys.ROLES)
    p.add_argument("--name", help="a label, e.g. the system that will use it")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=keys_create)

    p = sub.add_parser("demo", help="run the chat -> call -> agent scenario and print the brief")
    p.add_argument("--url", help="a running handoff (default: start one just for the demo)")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=demo)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
