"""`handoff doctor`: is this Redis fit to hold context that must not be lost?

Each check answers ok, warn or FAIL with a reason and, where there is one, the fix; any FAIL
makes the exit status non-zero.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

from handoff.store.diagnostics import SentinelFacts, ServerFacts

Level = Literal["ok", "warn", "FAIL"]
MIN_VERSION = (6, 2)  # XRANGE with an exclusive start, used to replay events


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.level:<4}  {self.check:<12} {self.message}"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def version(facts: ServerFacts) -> Finding:
    redis_version = str(facts.info.get("redis_version", "0"))
    name = (f"valkey {facts.info['valkey_version']} (redis {redis_version})"
            if "valkey_version" in facts.info else f"redis {redis_version}")
    if _version(redis_version) < MIN_VERSION:
        return Finding("FAIL", "version", f"{name}: handoff needs Redis 6.2 or newer")
    return Finding("ok", "version", name)


def persistence(facts: ServerFacts) -> list[Finding]:
    aof = facts.config.get("appendonly") or (
        "yes" if facts.info.get("aof_enabled") in (1, "1") else "no")
    if aof != "yes":
        return [Finding("FAIL", "persistence",
                        "appendonly is off: a Redis restart loses every turn and hand-off since "
                        "the last snapshot; set `appendonly yes` and `appendfsync always`")]
    found = [Finding("ok", "persistence", "append-only file on")]
    fsync = facts.config.get("appendfsync")
    if fsync == "always":
        found.append(Finding("ok", "fsync", "appendfsync always: nothing acknowledged is lost"))
    elif fsync == "everysec":
        found.append(Finding("warn", "fsync",
                             "appendfsync everysec: a crash can lose up to a second of "
                             "acknowledged writes; `appendfsync always` loses none"))
    elif fsync == "no":
        found.append(Finding("FAIL", "fsync",
                             "appendfsync no: the operating system decides when writes reach "
                             "the disk; set `appendfsync always` (or everysec)"))
    else:
        found.append(Finding("warn", "fsync", "appendfsync unknown (CONFIG is not available)"))
    if facts.info.get("aof_last_write_status", "ok") != "ok":
        found.append(Finding("FAIL", "persistence",
                             f"the last AOF write failed: {facts.info['aof_last_write_status']}"))
    return found


def memory(facts: ServerFacts) -> Finding:
    policy = facts.config.get("maxmemory-policy") or str(
        facts.info.get("maxmemory_policy", "unknown"))
    limit = int(facts.config.get("maxmemory") or facts.info.get("maxmemory", 0) or 0)
    used = facts.info.get("used_memory_human", "?")
    if policy == "noeviction":
        return Finding("ok", "memory", f"maxmemory-policy noeviction ({used} used)")
    # Every context key has a TTL, so volatile-* policies evict context as readily as allkeys-*.
    text = (f"maxmemory-policy {policy} could evict a customer's context under memory "
            f"pressure; set `maxmemory-policy noeviction`")
    if limit == 0:
        return Finding("warn", "memory", text + " (no maxmemory is set yet, so not today)")
    return Finding("FAIL", "memory", text)


def cluster(facts: ServerFacts, *, configured: bool) -> Finding:
    enabled = facts.info.get("cluster_enabled") in (1, "1")
    if enabled and not configured:
        return Finding("FAIL", "cluster", "this is a Redis Cluster node: set "
                                          "HANDOFF_REDIS_CLUSTER=true")
    if configured and not enabled:
        return Finding("FAIL", "cluster", "HANDOFF_REDIS_CLUSTER=true but the server is not "
                                          "in cluster mode")
    return Finding("ok", "cluster", "cluster mode" if enabled else "a single server")


def latency(facts: ServerFacts) -> Finding:
    if not facts.latencies_ms:
        return Finding("warn", "latency", "not measured")
    median, worst = statistics.median(facts.latencies_ms), max(facts.latencies_ms)
    text = (f"round trip median {median:.2f} ms, worst {worst:.2f} ms over "
            f"{len(facts.latencies_ms)} pings")
    # Each request costs one or two round trips: beyond a few ms they dominate its latency.
    return Finding("warn" if median > 5 else "ok", "latency", text)


def sentinel(found: SentinelFacts, facts: ServerFacts, *, write_ack: str) -> list[Finding]:
    """Can the sentinels fail over, is there a replica to fail over to, and what would a
    failover lose?"""
    out: list[Finding] = []
    down = {a: why for a, why in found.sentinels.items() if why != "ok"}
    answering = len(found.sentinels) - len(down)
    if not answering:
        return [Finding("FAIL", "sentinels", "no sentinel answers: "
                        + "; ".join(f"{a} {w}" for a, w in down.items()))]
    text = f"{answering} of {len(found.sentinels)} answer for {found.service!r}"
    if down:
        out.append(Finding("warn", "sentinels", text + "; not: " + ", ".join(down)))
    elif len(found.sentinels) < 3:
        out.append(Finding("warn", "sentinels", text + "; fewer than 3 cannot outvote a "
                                                       "network partition"))
    else:
        out.append(Finding("ok", "sentinels", text))
    out.append(Finding("ok" if found.quorum_ok else "FAIL", "quorum",
                       found.quorum or "no sentinel answered CKQUORUM"))
    reachable = [r for r, state in found.replicas.items() if state == "ok"]
    if not reachable:
        out.append(Finding("FAIL", "replicas", "no replica is reachable: a failover has nothing "
                                               "to promote"
                           + "".join(f"; {r} {s}" for r, s in found.replicas.items())))
    else:
        others = {r: s for r, s in found.replicas.items() if s != "ok"}
        out.append(Finding("warn" if others else "ok", "replicas",
                           f"{len(reachable)} reachable ({', '.join(reachable)})"
                           + "".join(f"; {r} {s}" for r, s in others.items())))
    minimum = int(facts.config.get("min-replicas-to-write") or 0)
    if write_ack == "replica" and len(reachable) < 2:
        # The failover promotes the one replica, leaving none to confirm: every write answers
        # 503 until a replica joins again, and for good if the old primary never returns.
        out.append(Finding("warn", "write ack", "HANDOFF_WRITE_ACK=replica with fewer than two "
                                                "replicas: after a failover writes answer 503 "
                                                "until another replica joins; run two"))
    elif write_ack == "replica":
        out.append(Finding("ok", "write ack", "HANDOFF_WRITE_ACK=replica: a write is answered "
                                              "only once a replica has it"))
    elif minimum >= 1:
        out.append(Finding("ok", "write ack", f"min-replicas-to-write {minimum}: a primary cut "
                                              "off from its replicas stops taking writes"))
    else:
        out.append(Finding("warn", "write ack",
                           "writes are acknowledged before a replica has them: a failover "
                           "loses the last ones; set HANDOFF_WRITE_ACK=replica to lose none, "
                           "or at least `min-replicas-to-write 1` on the primary"))
    return out


def replica_ack(facts: ServerFacts) -> Finding:
    """HANDOFF_WRITE_ACK=replica on a server without sentinels: is there a replica to confirm?"""
    replicas = int(facts.info.get("connected_slaves") or 0)
    if not replicas:
        return Finding("FAIL", "write ack", "HANDOFF_WRITE_ACK=replica but no replica is "
                                            "connected: every write answers 503; start a "
                                            "replica (replicaof) or set HANDOFF_WRITE_ACK=local")
    return Finding("ok", "write ack", f"HANDOFF_WRITE_ACK=replica: {replicas} replica(s) "
                                      "connected to confirm writes")


def examine(facts: ServerFacts, *, cluster_configured: bool,
            sentinels: SentinelFacts | None = None, write_ack: str = "local") -> list[Finding]:
    found = [version(facts), *persistence(facts), memory(facts),
             cluster(facts, configured=cluster_configured), latency(facts)]
    if sentinels is not None:
        found += sentinel(sentinels, facts, write_ack=write_ack)
    elif write_ack == "replica":
        found.append(replica_ack(facts))
    return found
