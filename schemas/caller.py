"""Who an API key is: what a client needs to know before it offers its user anything."""

from __future__ import annotations

from schemas.common import Record


class Caller(Record):
    """The key that made the request: its tenant, its role and its id (never its secret)."""

    id: str
    tenant: str
    role: str
