"""The store a one-off command works on (`handoff keys`, `handoff doctor`, `handoff demo --url`)
and the server's own: the configured Redis, or the embedded one in the data folder."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from urllib.parse import urlsplit, urlunsplit

from handoff.kernel.settings import Settings
from handoff.runtime.embedded import EmbeddedRedis
from handoff.services import apikeys
from handoff.store import Store
from handoff.store.connection import connect


def store_for(settings: Settings) -> tuple[AbstractContextManager[object], str]:
    """The Redis to use: HANDOFF_REDIS_URL (or the sentinels' primary), or the embedded one
    for the data folder."""
    if settings.store_url:
        return nullcontext(), settings.store_url
    embedded = EmbeddedRedis(settings.data_dir)
    return embedded, embedded.url


def shown(url: str) -> str:
    """A store URL fit for a terminal: its password, if any, replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def store_notice(settings: Settings, embedded: AbstractContextManager[object], fresh: bool
                  ) -> str:
    """Which store a one-off command used, and whether a server is likely to share it."""
    if not isinstance(embedded, EmbeddedRedis):
        source = "HANDOFF_REDIS_SENTINELS" if settings.redis_sentinels else "HANDOFF_REDIS_URL"
        return f"using the store at {shown(settings.store_url or '')} ({source})"
    where = embedded.data_dir
    if embedded.process is None:
        return f"using the embedded store in {where}, shared with the handoff serve running on it"
    if not fresh:
        return (f"using the embedded store in {where}; no handoff serve is running on it now "
                f"(one started with --data-dir {where} will use it)")
    return (f"warning: there was no store in {where}: made a new, empty one, and no handoff "
            "serve runs on it. A server started in another directory answers 401 to a key "
            "minted here: run this from the directory handoff serve runs in, or give its "
            "--data-dir (or HANDOFF_REDIS_URL).")


@contextmanager
def command_store(settings: Settings) -> Iterator[str]:
    """The store a one-off command (`keys`, `demo --url`) works on: the server's own Redis, or
    the embedded one in the data folder, joined if a server runs on it, else started for the
    command. Which one it was goes to stderr, with a warning if it had to be made from nothing
    (the command was run from another directory than the server, most likely)."""
    embedded, url = store_for(settings)
    fresh = isinstance(embedded, EmbeddedRedis) and not (
        embedded.data_dir / "appendonlydir").exists()
    with embedded:
        print(f"handoff: {store_notice(settings, embedded, fresh)}", file=sys.stderr)
        yield url


@asynccontextmanager
async def open_store(url: str, settings: Settings) -> AsyncIterator[Store]:
    """The store at `url` for one command: a few connections, closed when the command ends."""
    client = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                     max_connections=4)
    blocking = connect(url, cluster=settings.redis_cluster, timeout=settings.redis_timeout,
                       max_connections=1, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=settings.events_maxlen)
    try:
        yield store
    finally:
        await store.close()


async def create_key(url: str, settings: Settings, tenant: str, role: str, name: str
                     ) -> tuple[str, dict[str, str]]:
    """Mint an API key in the store at `url`: its secret (shown once) and its record."""
    async with open_store(url, settings) as store:
        return await apikeys.create(store, tenant=tenant, role=role, name=name,
                                    now_ms=int(time.time() * 1000))
