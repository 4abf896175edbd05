"""The HTTP client webhooks are sent with, guarded against reaching the service's own network.

Unless `webhook_allow_private_networks` is set, a delivery only ever connects to public
addresses: names are resolved here and every private, loopback, link-local, multicast or
reserved answer is dropped before connecting (so a name that is re-pointed at an internal
address after the subscription was made is refused too), address literals are checked before
the request, and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from handoff.services.delivery import Unreachable
from handoff.services.webhooks import public_address
from handoff.settings import Settings


class PublicResolver(AbstractResolver):
    """The default resolver, answering only public addresses."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if public_address(r["host"])]
        if not kept:
            raise OSError(f"{host} resolves to no public address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class Sender:
    """POSTs webhook bodies; one connection pool per process."""

    def __init__(self, settings: Settings) -> None:
        self.allow_private = settings.webhook_allow_private_networks
        connector = aiohttp.TCPConnector(
            limit=settings.webhook_concurrency,
            resolver=None if self.allow_private else PublicResolver())
        self.session = aiohttp.ClientSession(
            connector=connector, trust_env=False,
            timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds))

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The status the receiver answered; Unreachable if it could not be had."""
        host = urlsplit(url).hostname or ""
        if not self.allow_private and public_address(host) is False:
            raise Unreachable(f"{host} is not a public address")
        try:
            async with self.session.post(url, data=body, headers=headers,
                                         allow_redirects=False) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self.session.close()
        # Let the connector's transports finish closing before the loop goes.
        await asyncio.sleep(0)
