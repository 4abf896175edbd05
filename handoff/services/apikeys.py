"""API keys: a tenant and a role each; only a SHA-256 digest of the secret is ever stored.

A key is looked up by the digest of what the caller sent, so comparing is a hash-table lookup on
a value the caller cannot steer: how long a wrong guess takes says nothing about the real key.
Revoking or rotating takes effect on every process at once (the store's invalidation stream).
"""

from __future__ import annotations

import base64
import hashlib
import re

from handoff.kernel import ids
from handoff.kernel.errors import NotFound, Unauthorized
from handoff.services.deps import Deps, Principal
from handoff.store import Store

ROLES = ("bot", "ivr", "agent", "supervisor", "admin")
TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def public(record: dict[str, str]) -> dict[str, str | None]:
    """What may be shown of a key: never its secret (which is not stored anyway)."""
    return {"id": record["id"], "tenant": record["tenant"], "role": record["role"],
            "name": record.get("name") or None, "created_ms": record.get("created_ms"),
            "last_used_ms": record.get("last_used_ms"), "revoked_ms": record.get("revoked_ms"),
            "expires_ms": record.get("expires_ms")}


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
    await store.access.put_api_key(digest(secret), record)
    return secret, record


def _secret(authorization: str | None) -> str:
    """The key in `Bearer <key>`, or the password of `Basic` credentials.

    Basic is for vendors that can only put credentials in a webhook URL
    (`https://handoff:<key>@host/...`, as Twilio does); the user name is not checked.
    """
    scheme, _, value = (authorization or "").partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and 0 < len(value) <= 512:
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text
            value = ""
    elif scheme.lower() != "bearer":
        value = ""
    # Keys are ASCII; a header byte that is not UTF-8 arrives as a lone surrogate, which no
    # digest could even encode.
    if not value or len(value) > 256 or not value.isascii():
        raise Unauthorized("send Authorization: Bearer <key>")
    return value


async def authenticate(deps: Deps, authorization: str | None) -> Principal:
    """The principal behind an `Authorization: Bearer <key>` (or Basic) header."""
    secret = _secret(authorization)
    key_digest = digest(secret)
    now_ms = deps.now_ms()
    record = await deps.store.access.get_api_key(key_digest)
    if not record or not usable(record, now_ms):
        raise Unauthorized("unknown, revoked or expired key")
    if deps.key_uses.get(key_digest) is None:
        deps.key_uses.set(key_digest, True)
        await deps.store.access.update_api_key(key_digest, {"last_used_ms": str(now_ms)})
    return Principal(tenant=record["tenant"], role=record["role"], key_id=record["id"])


def usable(record: dict[str, str], now_ms: int) -> bool:
    if record.get("revoked_ms"):
        return False
    expires = record.get("expires_ms")
    return not expires or int(expires) > now_ms


async def _own(store: Store, key_id: str, tenant: str | None) -> tuple[str, dict[str, str]]:
    """A key by id (and, from the API, only of the caller's tenant: others are 404)."""
    key_digest = await store.access.api_key_digest(key_id) if key_id.startswith("key_") else None
    record = await store.access.get_api_key(key_digest) if key_digest else {}
    if not key_digest or not record or (tenant is not None and record["tenant"] != tenant):
        raise NotFound("no such key")
    return key_digest, record


async def listing(store: Store, tenant: str) -> list[dict[str, str]]:
    return await store.access.list_api_keys(tenant)


async def revoke(store: Store, key_id: str, *, tenant: str | None, now_ms: int
                 ) -> dict[str, str]:
    """Revoke a key everywhere, now."""
    key_digest, record = await _own(store, key_id, tenant)
    if not record.get("revoked_ms"):
        record = {**record, "revoked_ms": str(now_ms)}
        await store.access.update_api_key(key_digest, {"revoked_ms": record["revoked_ms"]})
    await store.notices.invalidate("key", [key_digest])
    return record


async def rotate(store: Store, key_id: str, *, tenant: str | None, now_ms: int,
                 grace_seconds: int = 0) -> tuple[str, dict[str, str]]:
    """A new key with the same tenant, role and name; the old one stops working after
    `grace_seconds` (at once by default), so a deployment can switch without downtime."""
    key_digest, record = await _own(store, key_id, tenant)
    if not usable(record, now_ms):
        raise NotFound("no such key (it is revoked or expired)")
    secret, new = await create(store, tenant=record["tenant"], role=record["role"],
                               name=record.get("name", ""), now_ms=now_ms)
    if grace_seconds > 0:
        await store.access.update_api_key(
            key_digest, {"expires_ms": str(now_ms + grace_seconds * 1000),
                         "rotated_to": new["id"]})
        await store.notices.invalidate("key", [key_digest])
    else:
        await revoke(store, key_id, tenant=tenant, now_ms=now_ms)
    return secret, new
