"""The HTTP client webhooks are sent with, guarded against reaching the service's own network.

Unless `webhook_allow_private_networks` is set, a delivery only ever connects to public
addresses: names are resolved here and every private, loopback, link-local, multicast or
reserved answer is dropped before connecting (so a name that is re-pointed at an internal
address after the subscription was made is refused too), address literals are checked before
the request, and redirects are never followed. Last, the connector's socket factory checks the
very address each socket is about to connect to, so a host spelling some HTTP client version
hands straight to the C library (`127.1`, `2130706433`) cannot reach this network either.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from handoff.kernel.settings import Settings
from handoff.services.delivery import Unreachable
from handoff.services.webhooks import public_address


class PublicResolver(AbstractResolver):
    """The default resolver, answering only public addresses."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if public_address(r["host"])]
        if not kept:
            # With an errno, so the dead letter's error says why rather than `[None]`.
            raise OSError(errno.EHOSTUNREACH, f"{host} resolves to no public address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A socket for one address the connector is about to connect to, if it is public.

    The last check, on the address itself rather than the URL's host: it holds whichever way
    the connector came by the address (resolved, or a literal it took as it was).
    """
    family, kind, proto, _, address = addr_info
    if not public_address(str(address[0])):
        raise OSError(errno.EHOSTUNREACH, f"{address[0]} is not a public address")
    return socket.socket(family=family, type=kind, proto=proto)


class Sender:
    """POSTs webhook bodies; one connection pool per process."""

    def __init__(self, settings: Settings) -> None:
        self.allow_private = settings.webhook_allow_private_networks
        connector = aiohttp.TCPConnector(
            limit=settings.webhook_concurrency,
            resolver=None if self.allow_private else PublicResolver(),
            socket_factory=None if self.allow_private else public_socket)
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
