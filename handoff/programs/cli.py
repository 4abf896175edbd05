"""`handoff serve | keys | demo | context | tail | doctor | mcp`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from handoff.app import create_app
from handoff.client import ClientError, HandoffClient
from handoff.kernel import logs
from handoff.kernel.errors import HandoffError, NotFound
from handoff.kernel.settings import Settings
from handoff.kernel.timefmt import iso
from handoff.programs.doctor import examine
from handoff.programs.localstore import command_store, open_store, store_for
from handoff.programs.terminal import brief_text, event_line
from handoff.runtime import serving
from handoff.runtime.embedded import EmbeddedRedis
from handoff.runtime.workers import supervise
from handoff.services import apikeys
from handoff.store import Store
from handoff.store.connection import connect, sentinel_target
from handoff.store.diagnostics import SentinelFacts, ServerFacts, sentinel_facts, server_facts
from schemas.brief import Brief


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                   ("port", getattr(args, "port", None)),
                                   ("data_dir", getattr(args, "data_dir", None)),
                                   ("log_format", getattr(args, "log_format", None)))
                 if v is not None}
    return Settings(**overrides)


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_format)
    # A worker joins a port its siblings share: only the first process asks.
    problem = None if args.reuse_port else serving.check_port(settings.host, settings.port)
    if problem:
        print(f"handoff: {problem}", file=sys.stderr)
        return 1
    embedded, url = store_for(settings)
    with embedded:
        if isinstance(embedded, EmbeddedRedis):
            logs.logger("handoff").info("embedded Redis in %s", embedded.data_dir)
        if args.workers > 1:
            return supervise(args.workers, ["--host", settings.host, "--port",
                                            str(settings.port), "--log-format",
                                            settings.log_format], url)
        app = create_app(settings.model_copy(update={"redis_url": url}))
        try:
            serving.run(app, host=settings.host, port=settings.port,
                        head_timeout=settings.header_timeout, reuse_port=args.reuse_port,
                        announce=lambda msg: print(msg, flush=True))
        except OSError as exc:  # taken between the check and now
            problem = serving.bind_problem(exc, settings.host, settings.port)
            if problem is None:
                raise
            print(f"handoff: {problem}", file=sys.stderr)
            return 1
    return 0


def _keys_command(args: argparse.Namespace) -> int:
    """Run one `handoff keys ...` command against the configured store."""
    settings = _settings(args)
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

    async def main(url: str) -> list[str]:
        async with open_store(url, settings) as store:
            return await run(store)

    try:
        with command_store(settings) as url:
            lines = asyncio.run(main(url))
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
    from handoff.programs.demo import run

    return run(_settings(args), url=args.url)


def _client(args: argparse.Namespace) -> HandoffClient:
    url, key = args.url or os.environ.get("HANDOFF_URL"), args.key or os.environ.get(
        "HANDOFF_KEY")
    if not url or not key:
        raise SystemExit("handoff: give --url and --key (or HANDOFF_URL and HANDOFF_KEY): "
                         "the service's address and an agent key")
    return HandoffClient(url, key, agent_id=args.agent_id)


def _report(exc: ClientError) -> int:
    print(f"handoff: {exc}", file=sys.stderr)
    return 1


def context(args: argparse.Namespace) -> int:
    """Print a customer's brief as an agent would read it."""
    async def fetch() -> Brief:
        async with _client(args) as client:
            return (await client.context(args.ref, turns=args.turns)).brief

    try:
        brief = asyncio.run(fetch())
    except ClientError as exc:
        return _report(exc)
    print(brief.model_dump_json(indent=2) if args.json else
          brief_text(brief, now=datetime.now(UTC)))
    return 0


def tail(args: argparse.Namespace) -> int:
    """Print a customer's (or the queue's) events as they happen, until Ctrl-C."""
    if bool(args.ref) == bool(args.queue):
        print("handoff: name a customer (REF) or give --queue", file=sys.stderr)
        return 2

    async def follow() -> None:
        async with _client(args) as client:
            stream = (client.queue_events(last_event_id=args.since) if args.queue
                      else client.events(args.ref, last_event_id=args.since))
            async with stream:
                async for event in stream:
                    print(event.data if args.json else event_line(event), flush=True)

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        return 0
    except ClientError as exc:
        return _report(exc)
    return 0


def doctor(args: argparse.Namespace) -> int:
    """Check the configured Redis (or the embedded one) for what handoff relies on."""
    settings = _settings(args)
    embedded, url = store_for(settings)

    async def inspect() -> tuple[ServerFacts, SentinelFacts | None]:
        client = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                         max_connections=2)
        target = sentinel_target(url)
        try:
            return await server_facts(client), (
                await sentinel_facts(target, wait=settings.redis_timeout) if target else None)
        finally:
            await client.aclose()

    try:
        with embedded:
            facts, sentinels = asyncio.run(inspect())
    except (HandoffError, RuntimeError) as exc:
        print(f"FAIL  connect      {url}: {exc}")
        return 1
    findings = examine(facts, cluster_configured=settings.redis_cluster, sentinels=sentinels,
                       write_ack=settings.write_ack)
    print(f"Redis at {url}")
    print("\n".join(str(f) for f in findings))
    failed = [f for f in findings if f.level == "FAIL"]
    print(f"{len(failed)} problem(s), {sum(f.level == 'warn' for f in findings)} warning(s)")
    return 1 if failed else 0


def mcp(args: argparse.Namespace) -> int:
    """The MCP server: Streamable HTTP with --http (each caller brings its key), else stdio
    with one key."""
    try:
        from handoff.mcp import transports
    except ImportError:
        print("handoff: the MCP server needs the mcp extra: pip install 'handoff[mcp]'",
              file=sys.stderr)
        return 2
    url = args.url or os.environ.get("HANDOFF_URL")
    if not url:
        print("handoff: give --url (or HANDOFF_URL): the service's address", file=sys.stderr)
        return 2
    # stdout is the protocol's own channel over stdio: logs go to stderr only.
    logs.configure(os.environ.get("HANDOFF_LOG_LEVEL", "WARNING"), "text")
    if args.http:
        transports.serve_http(url, host=args.host, port=args.port)
        return 0
    key = args.key or os.environ.get("HANDOFF_KEY")
    if not key:
        print("handoff: give --key (or HANDOFF_KEY): the API key the AI agent acts with",
              file=sys.stderr)
        return 2
    return asyncio.run(transports.serve_stdio(url, key))


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

    p = sub.add_parser("context", help="a customer's brief, readable in a terminal")
    p.add_argument("ref", help="cus_... or kind:value, e.g. account:88812345")
    p.add_argument("--turns", type=int, help="how many of the latest turns (default 50)")
    p.add_argument("--json", action="store_true", help="the brief as JSON instead")
    p.set_defaults(func=context)
    p = sub.add_parser("tail", help="live events of a customer (or --queue); Ctrl-C stops")
    p.add_argument("ref", nargs="?", help="cus_... or kind:value")
    p.add_argument("--queue", action="store_true", help="the tenant's hand-off queue instead")
    p.add_argument("--since", help="replay the events after this event id first")
    p.add_argument("--json", action="store_true", help="each event as JSON")
    p.set_defaults(func=tail)
    for command in (sub.choices["context"], sub.choices["tail"]):
        command.add_argument("--url", help="the service (default: $HANDOFF_URL)")
        command.add_argument("--key", help="an agent key (default: $HANDOFF_KEY)")
        command.add_argument("--agent-id", help="who is reading, for the audit trail")

    p = sub.add_parser("mcp", help="an MCP server for AI agents: stdio with --key, or "
                                   "Streamable HTTP at /mcp with --http")
    p.add_argument("--url", help="the handoff service (default: $HANDOFF_URL)")
    p.add_argument("--key", help="stdio: the API key to act with (default: $HANDOFF_KEY)")
    p.add_argument("--http", action="store_true",
                   help="serve Streamable HTTP; each client sends its own key as Bearer")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=mcp)

    p = sub.add_parser("doctor", help="check the configured Redis: version, persistence, "
                                      "memory policy, cluster, latency")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=doctor)

    args = parser.parse_args(argv)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # here, where a reader that went away can still be handled
        return status
    except BrokenPipeError:
        # The reader went away (`handoff context ... | head`): stop quietly, as Unix tools do.
        # stdout still holds what it could not write, and would fail again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
