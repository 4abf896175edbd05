"""API keys as operators manage them: the admin API's views over handoff/services/apikeys.py
(where keys are minted, checked, revoked and rotated)."""

from __future__ import annotations

from handoff.kernel.timefmt import when
from handoff.services import apikeys
from handoff.services.deps import Deps, Principal
from handoff.services.privacy import refuse_card_numbers
from schemas.admin import ApiKey, KeyIn, NewKey, RotateIn


def view(record: dict[str, str]) -> ApiKey:
    return ApiKey(id=record["id"], tenant=record["tenant"], role=record["role"],
                  name=record.get("name") or None, created_at=when(record.get("created_ms")),
                  last_used_at=when(record.get("last_used_ms")),
                  revoked_at=when(record.get("revoked_ms")),
                  expires_at=when(record.get("expires_ms")))


async def listing(deps: Deps, principal: Principal) -> list[ApiKey]:
    return [view(r) for r in await apikeys.listing(deps.store, principal.tenant)]


async def create(deps: Deps, principal: Principal, body: KeyIn) -> NewKey:
    refuse_card_numbers((("name",), body.name))
    secret, record = await apikeys.create(deps.store, tenant=principal.tenant, role=body.role,
                                          name=body.name or "", now_ms=deps.now_ms())
    return NewKey(**view(record).model_dump(), key=secret)


async def revoke(deps: Deps, principal: Principal, key_id: str) -> ApiKey:
    return view(await apikeys.revoke(deps.store, key_id, tenant=principal.tenant,
                                     now_ms=deps.now_ms()))


async def rotate(deps: Deps, principal: Principal, key_id: str, body: RotateIn) -> NewKey:
    secret, record = await apikeys.rotate(deps.store, key_id, tenant=principal.tenant,
                                          now_ms=deps.now_ms(), grace_seconds=body.grace_seconds)
    return NewKey(**view(record).model_dump(), key=secret)
