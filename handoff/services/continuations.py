"""Continuation codes: a short single-use number that ties a phone call to an earlier chat.

A wrong code cannot be pinned on any one code, so guessing is limited where it comes from. A
conversation (one call) that entered `continuation_max_failures` wrong codes, and a caller (each
identity the channel vouches for: the number on a call) that entered
`continuation_caller_max_failures` over all its calls, are locked out until the codes they could
have been guessing have expired. Above them, an API key or a source address that entered
`redeem_attempts_per_minute` wrong codes within a minute gets 429 until the minute is over: one
IVR key carries every caller of a contact centre, so that ceiling is sized for their honest typos
together and only stops guessing spread over many calls and numbers.
"""

from __future__ import annotations

from typing import NamedTuple

from handoff.kernel import ids
from handoff.kernel.errors import NotFound, StoreUnavailable, TooManyRequests, Unprocessable
from handoff.services import identity, merging, resolving, survivors, writes
from handoff.services.deps import Deps, Principal
from handoff.store.records import CustomerWrite
from schemas.handoffs import RedeemIn, RedeemResult

WINDOW_MS = 60_000


class _Limit(NamedTuple):
    """A counter of wrong codes: its name, lifetime, how many it allows and whose it is."""

    name: str
    ttl_ms: int
    most: int
    who: str
    per_minute: bool = False


async def issue(deps: Deps, tenant: str, customer_id: str, handoff_id: str) -> tuple[str, int]:
    """A fresh code for a hand-off: (code, expiry in epoch ms)."""
    ttl_ms = deps.settings.continuation_ttl_seconds * 1000
    expires = deps.now_ms() + ttl_ms
    record = {"customer_id": customer_id, "handoff_id": handoff_id, "expires_at": expires}
    for _ in range(20):
        code = ids.numeric_code(deps.settings.continuation_digits)
        if await deps.store.access.put_code(tenant, code, record, ttl_ms):
            return code, expires
    raise StoreUnavailable("no free continuation code; raise continuation_digits")


async def discard(deps: Deps, tenant: str, code: str | None) -> None:
    if code is not None:
        await deps.store.access.take_code(tenant, code)


async def redeem(deps: Deps, principal: Principal, code: str, body: RedeemIn,
                 address: str | None = None) -> RedeemResult:
    """Join the caller to the code's customer (and hand-off); the code is then spent."""
    tenant, settings = principal.tenant, deps.settings
    if not code.isdigit() or len(code) != settings.continuation_digits:
        raise Unprocessable("a continuation code is a number of "
                            f"{settings.continuation_digits} digits",
                            [{"loc": ["path", "code"], "msg": "wrong format"}])
    body = deps.privacy.safe_ids(body, "conversation_id", "source")
    # Bad identities are refused before the code is touched: a typo must not burn it.
    own = [i.key for i in identity.trusted(body.customer, body.channel, deps.privacy, tenant)]
    # Every attempt takes a slot first and a right code gives it back, so a burst of concurrent
    # guesses is counted as it arrives rather than after it has been tried. The call and the
    # caller come first: their own small limits stop one person guessing long before the key's
    # ceiling, which is shared by every caller of the contact centre and so must be high.
    now = deps.now_ms()
    window = now // WINDOW_MS
    lifetime_ms = settings.continuation_ttl_seconds * 1000
    access = deps.store.access
    limits = [_Limit(access.code_failures_key(tenant, body.conversation_id), lifetime_ms,
                     settings.continuation_max_failures, "this call")]
    limits += [_Limit(access.caller_failures_key(tenant, caller), lifetime_ms,
                      settings.continuation_caller_max_failures, "this caller") for caller in own]
    limits.append(_Limit(access.wrong_codes_key(tenant, f"key:{principal.key_id}", window),
                         WINDOW_MS * 2, settings.redeem_attempts_per_minute, "this key",
                         per_minute=True))
    if address:
        limits.append(_Limit(access.wrong_codes_key(tenant, f"addr:{address}", window),
                             WINDOW_MS * 2, settings.redeem_attempts_per_minute, "this address",
                             per_minute=True))
    counts = await access.reserve([(limit.name, limit.ttl_ms) for limit in limits])
    names = [limit.name for limit in limits]
    for limit, count in zip(limits, counts, strict=True):
        if count > limit.most:
            await access.release(names)
            # A call or caller stays locked until the codes it could have been guessing have
            # expired; a key or address until the minute is over.
            retry = (max(1, (WINDOW_MS - now % WINDOW_MS) // 1000) if limit.per_minute
                     else max(1, await access.ttl_ms(limit.name) // 1000))
            raise TooManyRequests(f"too many wrong continuation codes from {limit.who}",
                                  retry_after=retry)
    record = await deps.store.access.take_code(tenant, code)
    if record is None:
        raise NotFound("no such continuation code (wrong, expired or already used)")
    await deps.store.access.release(names)
    target = await survivors.survivor(deps, tenant, record["customer_id"], pending=True)
    try:
        caller: resolving.Resolved | None = await resolving.resolve_writer(
            deps, principal, conversation_id=body.conversation_id, channel=body.channel,
            customer=body.customer, create=False)
    except NotFound:
        caller = None  # a call we have never seen: it simply joins the code's customer
    merged: list[str] = []
    if caller is not None and caller.customer_id != target:
        merged = await merging.merge(deps, tenant, target, caller.customer_id,
                                      via="continuation")
    now = deps.now_ms()
    change = CustomerWrite()
    change.announce("continuation.redeemed", {
        "conversation_id": body.conversation_id, "channel": body.channel,
        "handoff_id": record.get("handoff_id"), "at": now})
    change.note_conversation(body.conversation_id, channel=body.channel, source=body.source,
                             started_ms=now, by=principal.key_id)
    if caller is not None:
        resolving.identity_records(caller, channel=body.channel,
                                  conversation_id=body.conversation_id, now_ms=now,
                                  change=change)
    target, _ = await writes.write(deps, tenant, target, change)
    # The call's own identities (its number, the call id) now lead to the chat's customer.
    await deps.store.customers.link(tenant, target, conversations=[body.conversation_id],
                                    identities=own, ttl_ms=deps.retention_ms(tenant),
                                    overwrite=True)
    return RedeemResult(customer_id=target, handoff_id=record.get("handoff_id"), merged=merged)
