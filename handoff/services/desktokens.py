"""Agent panel tokens: short-lived, signed, and only as good as the agent key that minted them.

A token is `dt_<payload>.<signature>`: the payload is base64url JSON of
`[tenant, agent id, minting key id, expiry in epoch seconds]` (the panel reads its agent and
expiry from it; it is signed, not secret) and the signature HMAC-SHA256 of it
under the deployment's panel secret (created once in Redis, so every process and every restart
checks every token). Nothing is stored per token; revoking the minting key kills its tokens on
every process at once, because each use checks the key is still usable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from handoff.kernel.errors import Unauthorized
from handoff.services import apikeys
from handoff.services.deps import Deps, Principal

PREFIX = "dt_"
# The keys whose holders use a panel: agents (/desk/) and supervisors (/desk/supervisor).
PANEL_ROLES = ("agent", "supervisor")
MAX_LENGTH = 600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def mint(deps: Deps, principal: Principal, agent_id: str, *, expires_ms: int) -> str:
    """A token for `agent_id` acting with `principal`'s key until `expires_ms`."""
    payload = _b64(json.dumps([principal.tenant, agent_id, principal.key_id, expires_ms // 1000],
                              separators=(",", ":")).encode())
    return f"{PREFIX}{payload}.{_sign(deps.store.desk_secret, payload)}"


def is_token(secret: str) -> bool:
    return secret.startswith(PREFIX)


def _claims(deps: Deps, token: str) -> list[Any]:
    """The signed payload, or 401: forged, damaged and expired tokens are told apart so the
    panel can say which."""
    body = token[len(PREFIX):]
    payload, _, signature = body.partition(".")
    # A token is ASCII; undecodable bytes in a header or query arrive as lone surrogates.
    if (len(token) > MAX_LENGTH or not token.isascii() or not payload or not signature
            or not hmac.compare_digest(_sign(deps.store.desk_secret, payload), signature)):
        raise Unauthorized("this panel token is not valid", reason="invalid")
    try:
        claims = json.loads(_unb64(payload))
    except (binascii.Error, ValueError) as exc:  # signed by us, so never, but never a 500
        raise Unauthorized("this panel token is not valid", reason="invalid") from exc
    if not (isinstance(claims, list) and len(claims) == 4
            and all(isinstance(c, str) for c in claims[:3]) and isinstance(claims[3], int)):
        raise Unauthorized("this panel token is not valid", reason="invalid")
    if claims[3] * 1000 <= deps.now_ms():
        raise Unauthorized("this panel token has expired; open the panel again from your "
                           "desk", reason="expired")
    return claims


async def verify(deps: Deps, token: str) -> Principal:
    """The principal a panel token stands for (an agent, or a supervisor when a supervisor key
    minted it: the role is the minting key's), while its key is still usable."""
    tenant, agent_id, key_id, expires_s = _claims(deps, token)
    digest = await deps.store.access.api_key_digest(key_id)
    record = await deps.store.access.get_api_key(digest) if digest else {}
    if (not digest or not record or not apikeys.usable(record, deps.now_ms())
            or record["tenant"] != tenant or record["role"] not in PANEL_ROLES):
        raise Unauthorized("the key that opened this panel was revoked", reason="revoked")
    return Principal(tenant=tenant, role=record["role"], key_id=key_id, agent_id=agent_id,
                     expires_ms=expires_s * 1000)
