"""The adapter contract.

An adapter is one module: it declares its routes under `/v1/adapters/{name}/`, checks the vendor's
own authentication (a signature, a shared secret), turns the vendor's payload into the core
request models in `schemas/`, calls the services, and answers in the vendor's format. It holds no
storage logic and never touches Redis.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class Adapter(Protocol):
    """What `create_app` needs from a vendor module."""

    name: str

    def routes(self) -> list[web.RouteDef]:
        """The vendor's webhook routes, mounted under `/v1/adapters/{name}/`."""
        ...

    async def authenticate(self, request: web.Request, body: bytes) -> None:
        """Raise `handoff.errors.Unauthorized` unless the vendor's own check passes."""
        ...
