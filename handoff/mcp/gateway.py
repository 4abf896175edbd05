"""The MCP server's REST side: one `HandoffClient` per key presented (sharing one connection
pool), and who each key is, as the service says."""

from __future__ import annotations

import hashlib
import time

import aiohttp

from handoff.client import HandoffClient, RetryPolicy, UnauthorizedError
from schemas.caller import Caller

# How long a key's whoami answer is reused when authenticating HTTP requests of one session.
WHOAMI_TTL_S = 5.0
# REST calls are retried on 503 and refused connections only briefly: the AI agent on the other
# end is waiting, and a 429 is the caller's own rate limit, passed on for it to honour.
CALLS = RetryPolicy(attempts=3, total=5.0, base=0.1, cap=1.0)
STREAMS = RetryPolicy(attempts=5, total=30.0, base=0.2, cap=5.0)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Gateway:
    """The REST side: one client per key (sharing one connection pool), and who each key is."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http: aiohttp.ClientSession | None = None
        self._clients: dict[str, HandoffClient] = {}
        self._callers: dict[str, tuple[float, Caller]] = {}

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def client(self, key: str, *, streams: bool = False) -> HandoffClient:
        """A client calling with `key` (kept only while the key is in use)."""
        name = digest(key) + (":s" if streams else "")
        client = self._clients.get(name)
        if client is None:
            if len(self._clients) > 10_000:  # keys come and go; their clients hold nothing
                self._clients.clear()
            client = HandoffClient(self.url, key, session=self.http,
                                   retry=STREAMS if streams else CALLS)
            self._clients[name] = client
        return client

    async def whoami(self, key: str, *, fresh: bool = False) -> Caller:
        """The key's tenant and role, as the service says (ProblemError if it refuses it)."""
        name = digest(key)
        now = time.monotonic()
        hit = self._callers.get(name)
        if hit is not None and not fresh and now - hit[0] < WHOAMI_TTL_S:
            return hit[1]
        try:
            caller = await self.client(key).whoami()
        except UnauthorizedError:
            self.forget(key)
            raise
        if len(self._callers) > 10_000:
            self._callers.clear()
        self._callers[name] = (now, caller)
        return caller

    def forget(self, key: str) -> None:
        """A key the service refused: nothing of it is reused."""
        name = digest(key)
        self._callers.pop(name, None)
        self._clients.pop(name, None)
        self._clients.pop(name + ":s", None)
