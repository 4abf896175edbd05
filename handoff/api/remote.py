"""Who sent a request: the peer, or, when the peer is a proxy the deployment trusts
(`HANDOFF_TRUSTED_PROXIES`), the client that proxy names in `X-Forwarded-For`.

Each proxy appends the address it was reached from, so the header is read from the right: the
right-most hop that is not itself a trusted proxy is the first address no trusted party could
have been fooled about; everything left of it is whatever the client chose to send. From a peer
that is not trusted the header is ignored, since anyone can send one. A hop that is not an
address stops the walk at the last address that was one, so a garbled header can only name a
proxy, never a client of the sender's choosing.

Worked out once per request and kept on it: the failed-authentication limit, the continuation
code limits, the audit trail and the access log all ask.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from aiohttp import web

from handoff.api.state import CLIENT_ADDRESS, SETTINGS

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# More trusted hops than any real chain of proxies; past them the rest is not worth reading.
MAX_HOPS = 16


def client_address(request: web.Request) -> str | None:
    """The client's address for limits, the audit trail and logs; None when unknown."""
    known = request.get(CLIENT_ADDRESS)
    if known is not None:
        return known or None
    peer = request.remote
    proxies = request.app[SETTINGS].trusted_proxies
    if proxies and peer:
        peer = forwarded_client(peer, proxies, request.headers.getall("X-Forwarded-For", ()))
    request[CLIENT_ADDRESS] = peer or ""
    return peer or None


def forwarded_client(peer: str, proxies: Sequence[Network], forwarded: Sequence[str]) -> str:
    """The right-most hop of `forwarded` (the X-Forwarded-For headers, in order) that is not a
    trusted proxy, when `peer` is one; else `peer` itself."""
    parsed = _parse(peer)
    if parsed is None or not _trusted(parsed[0], proxies):
        return peer
    current = parsed[1]
    hops = [hop for header in forwarded for hop in header.split(",")]
    for hop in reversed(hops[-MAX_HOPS:]):
        parsed = _parse(hop)
        if parsed is None:
            break
        current = parsed[1]
        if not _trusted(parsed[0], proxies):
            break
    return current


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


# Parsing an address costs several times more than everything else here, and the same few (the
# proxies, the busiest clients) come back request after request.
@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[Address, str] | None:
    """An address as proxies write it (bare, `[v6]`, `[v6]:port` or `v4:port`) and its
    canonical text; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d: the same client either way.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, str(address)
