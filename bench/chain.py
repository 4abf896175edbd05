"""`python -m bench.chain`: what the request pipeline itself costs, without Redis or a socket.

A no-op route is added to the real application and one request object is handed to aiohttp's
`Application._handle` again and again: routing, the middleware pipeline (request id, access line,
metrics, problem rendering, in-flight cap) and the no-op handler, nothing else. Prints µs per
request (best of 15 runs) and the Python calls per request.

Timings on a shared machine move with the neighbours; instruction counts do not. For those, run
it twice under valgrind with two request counts and divide the difference, e.g.

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python -m bench.chain --requests 200 --no-timing
    (the same with --requests 2200; instructions per request = difference / 2000)

Run it from another source tree's folder (`cd TREE && python -m bench.chain`, with this `bench/`
copied there) to compare two versions.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from handoff.app import create_app
from handoff.kernel import logs
from handoff.kernel.settings import Settings


async def _noop(request: web.Request) -> web.Response:
    return web.Response(body=b"{}", content_type="application/json")


def _handler(access_lines: bool) -> Callable[[], None]:
    """One request through the whole pipeline per call (its coroutine never has to wait)."""
    logs.configure("INFO", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (for the life of the process)
    if not access_lines:
        logging.getLogger("handoff.access").setLevel(logging.WARNING)
    # The store is never opened: its cleanup context runs only when the app starts.
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    app.router.add_route("POST", "/v1/noop/{ref}", _noop)
    app.freeze()
    request = make_mocked_request("POST", "/v1/noop/cus_x", app=app)

    def handle() -> None:
        step = app._handle(request)
        try:
            step.send(None)
        except StopIteration:
            return
        raise RuntimeError("the pipeline waited for something: not a no-op any more")

    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30_000, help="per timed run")
    parser.add_argument("--no-access-lines", action="store_true",
                        help="as with HANDOFF_LOG_LEVEL=WARNING")
    parser.add_argument("--no-timing", action="store_true",
                        help="only send the requests (for instruction counts under valgrind)")
    args = parser.parse_args(argv)
    handle = _handler(not args.no_access_lines)
    if args.no_timing:
        for _ in range(args.requests):
            handle()
        return 0
    for _ in range(1000):
        handle()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(1000):
        handle()
    profile.disable()
    calls = pstats.Stats(profile).total_calls / 1000  # type: ignore[attr-defined]
    best = float("inf")
    for _ in range(15):
        started = time.perf_counter()
        for _ in range(args.requests):
            handle()
        best = min(best, (time.perf_counter() - started) / args.requests * 1e6)
    print(f"{best:.2f} µs per request (best of 15), {calls:.0f} Python calls per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
