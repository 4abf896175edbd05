"""`handoff serve | keys create | demo`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from pathlib import Path

from aiohttp import web

from handoff import logs
from handoff.app import create_app
from handoff.embedded import EmbeddedRedis
from handoff.errors import NotFound
from handoff.services import apikeys
from handoff.services.timefmt import iso
from handoff.settings import Settings
from handoff.store import Store
from handoff.store.connection import connect
from handoff.workers import supervise


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                   ("port", getattr(args, "port", None)),
                                   ("data_dir", getattr(args, "data_dir", None)),
                                   ("log_format", getattr(args, "log_format", None)))
                 if v is not None}
    return Settings(**overrides)


def _store_for(settings: Settings) -> tuple[AbstractContextManager[object], str]:
    """The Redis to use: HANDOFF_REDIS_URL, or the embedded one for the data folder."""
    if settings.redis_url:
        return nullcontext(), settings.redis_url
    embedded = EmbeddedRedis(settings.data_dir)
    return embedded, embedded.url


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_format)
    embedded, url = _store_for(settings)
    with embedded:
        if isinstance(embedded, EmbeddedRedis):
            logs.logger("handoff").info("embedded Redis in %s", embedded.data_dir)
        if args.workers > 1:
            return supervise(args.workers, ["--host", settings.host, "--port",
                                            str(settings.port), "--log-format",
                                            settings.log_format], url)
        app = create_app(settings.model_copy(update={"redis_url": url}))
        web.run_app(app, host=settings.host, port=settings.port, shutdown_timeout=10,
                    reuse_port=args.reuse_port or None,
                    print=lambda msg: print(msg, flush=True), access_log=None)
    return 0


@asynccontextmanager
async def _open_store(url: str, settings: Settings) -> AsyncIterator[Store]:
    client = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                     max_connections=4)
    blocking = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                       max_connections=1, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=settings.events_maxlen)
    try:
        yield store
    finally:
        await store.close()


async def _create_key(url: str, settings: Settings, tenant: str, role: str, name: str
                      ) -> tuple[str, dict[str, str]]:
    async with _open_store(url, settings) as store:
        return await apikeys.create(store, tenant=tenant, role=role, name=name,
                                    now_ms=int(time.time() * 1000))


def _keys_command(args: argparse.Namespace) -> int:
    """Run one `handoff keys ...` command against the configured store."""
    settings = _settings(args)
    embedded, url = _store_for(settings)
    now = int(time.time() * 1000)

    async def run(store: Store) -> list[str]:
        if args.keys == "create":
            secret, record = await apikeys.create(store, tenant=args.tenant, role=args.role,
                                                  name=args.name or "", now_ms=now)
            return [f"created {record['id']} for tenant {record['tenant']} with role "
                    f"{record['role']}; the key is shown once:", secret]
        if args.keys == "list":
            return [_key_line(r) for r in await apikeys.listing(store, args.tenant)]
        if args.keys == "revoke":
            return [_key_line(await apikeys.revoke(store, args.id, tenant=None, now_ms=now))]
        secret, record = await apikeys.rotate(store, args.id, tenant=None, now_ms=now,
                                              grace_seconds=args.grace)
        return [f"rotated {args.id} to {record['id']}; the new key is shown once:", secret]

    async def main() -> list[str]:
        async with _open_store(url, settings) as store:
            return await run(store)

    try:
        with embedded:
            lines = asyncio.run(main())
    except (ValueError, NotFound) as exc:
        print(f"handoff: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _key_line(record: dict[str, str]) -> str:
    def at(name: str) -> str:
        value = record.get(name)
        return iso(value) or "-" if value else "-"

    state = "revoked" if record.get("revoked_ms") else (
        f"expires {at('expires_ms')}" if record.get("expires_ms") else "active")
    return (f"{record['id']}  tenant={record['tenant']}  role={record['role']}  "
            f"name={record.get('name') or '-'}  created={at('created_ms')}  "
            f"last_used={at('last_used_ms')}  {state}")


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
    p.add_argument("--log-format", choices=("auto", "json", "text"),
                   help="json lines, text for a person, or auto (the default): text on a "
                        "terminal, json otherwise")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=serve)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys", required=True)
    p = keys.add_parser("create", help="create a key; prints it as the last line")
    p.add_argument("--tenant", required=True)
    p.add_argument("--role", required=True, choices=apikeys.ROLES)
    p.add_argument("--name", help="a label, e.g. the system that will use it")
    p = keys.add_parser("list", help="a tenant's keys: id, role, created, last used (no secrets)")
    p.add_argument("--tenant", required=True)
    p = keys.add_parser("revoke", help="stop a key now, on every process")
    p.add_argument("id")
    p = keys.add_parser("rotate", help="replace a key; prints the new one as the last line")
    p.add_argument("id")
    p.add_argument("--grace", type=int, default=0,
                   help="seconds the old key keeps working (default: none)")
    for command in keys.choices.values():
        command.add_argument("--data-dir", type=Path)
        command.set_defaults(func=_keys_command)

    p = sub.add_parser("demo", help="run the chat -> call -> agent scenario and print the brief")
    p.add_argument("--url", help="a running handoff (default: start one just for the demo)")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=demo)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
