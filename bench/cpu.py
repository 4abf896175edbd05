"""How much CPU other processes took while something was measured.

The machine has two cores and the bench uses both, so a busy neighbour (a test suite, a build)
lowers every figure. The meter counts all user + system time on the machine and subtracts this
process and its children (live ones from /proc, finished ones from os.times()), leaving what
nothing of ours used. irq and softirq time, which no process is charged for, is left out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
QUIET_CORES = 0.05  # other processes' CPU below this does not move the figures


def _machine_seconds() -> float:
    with open("/proc/stat") as f:
        fields = f.readline().split()  # the aggregate "cpu" line
    user, nice, system = (int(v) for v in fields[1:4])
    return (user + nice + system) / TICK


def _live_children_seconds() -> float:
    """CPU of our running children: every process we start is a direct child (taskset execs)."""
    me, total = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces or parentheses: split after its closing one.
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if int(rest[1]) == me:
            total += int(rest[11]) + int(rest[12])  # utime, stime
    return total / TICK


def tree_seconds(pid: int) -> float:
    """CPU (user + system) of a live process and its live children: what a server under test
    spends, however busy the rest of the machine is."""
    parents: dict[int, int] = {}
    spent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        child = int(stat.parent.name)
        parents[child] = int(rest[1])
        spent[child] = int(rest[11]) + int(rest[12])
    tree, total = {pid}, 0
    for child in sorted(parents):  # parents start before their children: one pass suffices
        if child in tree or parents[child] in tree:
            tree.add(child)
            total += spent.get(child, 0)
    return total / TICK


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _live_children_seconds()


@dataclass(frozen=True)
class CpuMeter:
    wall: float
    machine: float
    own: float

    @classmethod
    def start(cls) -> CpuMeter:
        return cls(time.monotonic(), _machine_seconds(), _own_seconds())

    def foreign_cores(self) -> float:
        """Cores busy with other processes since start(), on average."""
        wall = time.monotonic() - self.wall
        foreign = (_machine_seconds() - self.machine) - (_own_seconds() - self.own)
        return max(0.0, foreign) / wall if wall > 0 else 0.0


def wait_quiet(limit: float, *, threshold: float = QUIET_CORES, sample: float = 1.0) -> float:
    """Wait (at most `limit` seconds) for a `sample`-long moment when other processes use less
    than `threshold` cores, so a neighbour's burst does not land in a measurement. Answers the
    seconds waited; measuring goes ahead either way, and the figure's own meter tells."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        meter = CpuMeter.start()
        time.sleep(sample)
        if meter.foreign_cores() < threshold:
            break
    return time.monotonic() - started
