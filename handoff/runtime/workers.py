"""`handoff serve --workers N`: N server processes sharing one port through SO_REUSEPORT.

The parent only supervises: it starts the workers, restarts one that dies, and on SIGTERM or
SIGINT passes the signal on and waits for them all (each finishes its in-flight requests).
It also gives them one fresh metrics folder, so `/metrics` on any worker sums all of them,
and removes it when they are all gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from types import FrameType

from handoff.kernel import logs, metrics

log = logs.logger("handoff.runtime.workers")
RESTART_PAUSE = 1.0


def supervise(count: int, argv: list[str], redis_url: str) -> int:
    """Run `count` copies of `handoff serve argv` until told to stop; their worst exit code."""
    shared = tempfile.mkdtemp(prefix="handoff-metrics-")
    try:
        return _supervise(count, argv, {**os.environ, "HANDOFF_REDIS_URL": redis_url,
                                        metrics.MULTIPROC_ENV: shared}, shared)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _supervise(count: int, argv: list[str], env: dict[str, str], shared: str) -> int:
    command = [sys.executable, "-m", "handoff", "serve", "--reuse-port", *argv]
    workers = [subprocess.Popen(command, env=env) for _ in range(count)]
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Wakes at once on a signal; otherwise looks for a dead worker five times a second.
        while not stopping.wait(0.2):
            for n, worker in enumerate(workers):
                if worker.poll() is not None and not stopping.wait(RESTART_PAUSE):
                    log.warning("worker %d exited with %s; restarting", worker.pid,
                                worker.returncode)
                    metrics.process_exited(worker.pid, shared)
                    workers[n] = subprocess.Popen(command, env=env)
        return max((w.wait() for w in workers), default=0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
