"""The yardsticks the service is measured against, each a tiny aiohttp app on the same core.

- `hello`: a small JSON answer; the ceiling of aiohttp itself on this machine.
- `get`: one redis-py GET (redis.asyncio + hiredis, one pool) of a 2 KB msgpack blob, as JSON;
  the floor for any request that needs one Redis round trip.
- `pipeline`: a 3-command pipeline (meta hash, last 50 turns of a stream, facts hash) answered
  as ~11 KB of JSON; what a hand-written brief without any service logic would cost.

Run one with `python -m bench.baselines KIND --port P --redis-url URL`; `seed()` writes the data
the last two read.
"""

from __future__ import annotations

import argparse
from typing import Any

import msgpack
import redis
from aiohttp import web
from redis.asyncio import Redis

PREFIX = "bench:baseline"
BLOB = f"{PREFIX}:blob"
META = f"{PREFIX}:meta"
TURNS = f"{PREFIX}:turns"
FACTS = f"{PREFIX}:facts"
BRIEF_TURNS = 50
BLOB_BYTES = 2048
REDIS: web.AppKey[Redis] = web.AppKey("redis", Redis)
TURN_TEXT = ("I was charged twice for my last order and I would like the second payment "
             "refunded to my card")


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def blob() -> bytes:
    """A customer-like record packed to exactly BLOB_BYTES."""
    record: dict[str, Any] = {
        "id": "cus_01JBENCHBASELINE0000000000", "tenant": "bench",
        "identities": [{"kind": "chat", "value": "visitor-baseline", "state": "linked"},
                       {"kind": "email", "value": "ana@example.com", "state": "claimed"}],
        "facts": {"order_number": "A-1001", "issue": "double charge"}, "note": ""}
    record["note"] = "x" * (BLOB_BYTES - len(_pack(record)) - 2)
    packed = _pack(record)
    # The str header grows by a byte or two when the note crosses a length class.
    record["note"] = record["note"][: len(record["note"]) - (len(packed) - BLOB_BYTES)]
    return _pack(record)


def turn(n: int) -> dict[str, Any]:
    return {"id": f"t{n}", "conversation_id": "web-baseline", "channel": "chat",
            "role": "customer" if n % 2 else "bot", "text": TURN_TEXT,
            "ts": f"2026-11-23T10:{n // 60 % 60:02d}:{n % 60:02d}Z"}


def seed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.delete(BLOB, META, TURNS, FACTS)
        pipe.set(BLOB, blob())
        pipe.hset(META, mapping={"id": "cus_01JBENCHBASELINE0000000000",
                                 "created": "1795428000000", "ver": "60"})
        pipe.hset(FACTS, mapping={"order_number": _pack({"value": "A-1001", "channel": "chat"}),
                                  "issue": _pack({"value": "double charge", "channel": "chat"})})
        for n in range(BRIEF_TURNS + 10):
            pipe.xadd(TURNS, {"d": _pack(turn(n))})
        pipe.execute()
    finally:
        client.close()


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": "baseline"})


async def one_get(request: web.Request) -> web.Response:
    raw = await request.app[REDIS].get(BLOB)
    if raw is None:
        raise web.HTTPServiceUnavailable(text="baseline data not seeded")
    return web.json_response(msgpack.unpackb(raw, raw=False))


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


async def pipeline(request: web.Request) -> web.Response:
    # redis-py types queued pipeline commands as awaitables; they are not (handoff's store
    # holds its clients as Any for the same reason).
    client: Any = request.app[REDIS]
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(META)
        pipe.xrevrange(TURNS, count=BRIEF_TURNS)
        pipe.hgetall(FACTS)
        meta, entries, facts = await pipe.execute()
    turns = [msgpack.unpackb(fields[b"d"], raw=False) for _, fields in reversed(entries)]
    return web.json_response({
        "customer": _text(meta),
        "facts": {k.decode(): msgpack.unpackb(v, raw=False) for k, v in facts.items()},
        "turns": turns})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


HANDLERS = {"hello": hello, "get": one_get, "pipeline": pipeline}


def make_app(kind: str, redis_url: str) -> web.Application:
    app = web.Application()
    app.router.add_get("/", HANDLERS[kind])
    app.router.add_get("/healthz", healthz)
    if kind != "hello":
        async def client(app: web.Application) -> Any:
            # The same pool shape as the service (handoff/store/connection.py).
            app[REDIS] = Redis.from_url(redis_url, max_connections=256, socket_timeout=2.0,
                                        decode_responses=False)
            yield
            await app[REDIS].aclose()
        app.cleanup_ctx.append(client)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=sorted(HANDLERS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    # access_log=None: the service runs without one too (handoff/programs/cli.py).
    web.run_app(make_app(args.kind, args.redis_url), host="127.0.0.1", port=args.port,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
