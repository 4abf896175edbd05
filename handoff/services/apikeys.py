"""API keys: a tenant and a role each; only a SHA-256 digest of the secret is ever stored."""

from __future__ import annotations

import hashlib
import re

from handoff import ids
from handoff.errors import Unauthorized
from handoff.services.deps import Principal
from handoff.store import Store

ROLES = ("bot", "ivr", "agent", "admin")
TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create(store: Store, *, tenant: str, role: str, name: str = "",
                 now_ms: int) -> tuple[str, dict[str, str]]:
    """A new key: (the secret, shown once; the stored record)."""
    if not TENANT.match(tenant):
        raise ValueError("tenant: lower-case letters, digits, '-' and '_', at most 63")
    if role not in ROLES:
        raise ValueError(f"role: one of {', '.join(ROLES)}")
    secret = ids.api_secret()
    record = {"id": ids.key_id(), "tenant": tenant, "role": role, "name": name,
              "created_ms": str(now_ms)}
    await store.put_api_key(digest(secret), record)
    return secret, record


async def authenticate(store: Store, authorization: str | None) -> Principal:
    """The principal behind an `Authorization: Bearer <key>` header."""
    if not authorization:
        raise Unauthorized("send Authorization: Bearer <key>")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > 256:
        raise Unauthorized("send Authorization: Bearer <key>")
    # The lookup is by digest, so how long a guess takes says nothing about the real key.
    record = await store.get_api_key(digest(secret))
    if not record or record.get("revoked"):
        raise Unauthorized("unknown or revoked key")
    return Principal(tenant=record["tenant"], role=record["role"], key_id=record["id"])
