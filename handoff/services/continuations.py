"""Continuation codes: a short single-use number that ties a phone call to an earlier chat.

A wrong code cannot be pinned on any one code, so guessing is limited where it comes from: an API
key or a source address that entered `redeem_attempts_per_minute` wrong codes within a minute
gets 429 until the minute is over, and a conversation (one call) that entered
`continuation_max_failures` wrong codes is locked out until the codes it could have been guessing
have expired.
"""

from __future__ import annotations

from handoff import ids
from handoff.errors import NotFound, StoreUnavailable, TooManyRequests, Unprocessable
from handoff.services import identity
from handoff.services.conversations import conversation_record
from handoff.services.deps import Deps, Principal
from handoff.services.privacy import refuse_card_numbers
from handoff.store import codec
from handoff.store.store import CustomerWrite
from schemas.handoffs import RedeemIn, RedeemResult

WINDOW_MS = 60_000


async def issue(deps: Deps, tenant: str, customer_id: str, handoff_id: str) -> tuple[str, int]:
    """A fresh code for a hand-off: (code, expiry in epoch ms)."""
    ttl_ms = deps.settings.continuation_ttl_seconds * 1000
    expires = deps.now_ms() + ttl_ms
    record = {"customer_id": customer_id, "handoff_id": handoff_id, "expires_at": expires}
    for _ in range(20):
        code = ids.numeric_code(deps.settings.continuation_digits)
        if await deps.store.put_code(tenant, code, record, ttl_ms):
            return code, expires
    raise StoreUnavailable("no free continuation code; raise continuation_digits")


async def discard(deps: Deps, tenant: str, code: str | None) -> None:
    if code is not None:
        await deps.store.take_code(tenant, code)


async def redeem(deps: Deps, principal: Principal, code: str, body: RedeemIn,
                 address: str | None = None) -> RedeemResult:
    """Join the caller to the code's customer (and hand-off); the code is then spent."""
    tenant, settings = principal.tenant, deps.settings
    if not code.isdigit() or len(code) != settings.continuation_digits:
        raise Unprocessable("a continuation code is a number of "
                            f"{settings.continuation_digits} digits",
                            [{"loc": ["path", "code"], "msg": "wrong format"}])
    # Bad identities are refused before the code is touched: a typo must not burn it.
    refuse_card_numbers((("conversation_id",), body.conversation_id), (("source",), body.source))
    own = [i.key for i in identity.trusted(body.customer, body.channel, deps.privacy, tenant)]
    # Every attempt takes a slot first and a right code gives it back, so a burst of concurrent
    # guesses is counted as it arrives rather than after it has been tried.
    now = deps.now_ms()
    window = now // WINDOW_MS
    minute_left = max(1, (WINDOW_MS - now % WINDOW_MS) // 1000)
    failures_key = deps.store.code_failures_key(tenant, body.conversation_id)
    limits = [(deps.store.wrong_codes_key(tenant, f"key:{principal.key_id}", window),
               WINDOW_MS * 2,
               settings.redeem_attempts_per_minute, "this key")]
    if address:
        limits.append((deps.store.wrong_codes_key(tenant, f"addr:{address}", window),
                       WINDOW_MS * 2,
                       settings.redeem_attempts_per_minute, "this address"))
    limits.append((failures_key, settings.continuation_ttl_seconds * 1000,
                   settings.continuation_max_failures, "this conversation"))
    counts = await deps.store.reserve([(name, ttl) for name, ttl, _, _ in limits])
    names = [name for name, _, _, _ in limits]
    for (name, _, limit, who), count in zip(limits, counts, strict=True):
        if count > limit:
            await deps.store.release(names)
            retry = minute_left if name != failures_key else max(
                1, await deps.store.ttl_ms(failures_key) // 1000)
            raise TooManyRequests(f"too many wrong continuation codes from {who}",
                                  retry_after=retry)
    record = await deps.store.take_code(tenant, code)
    if record is None:
        raise NotFound("no such continuation code (wrong, expired or already used)")
    await deps.store.release(names)
    target = await identity.survivor(deps, tenant, record["customer_id"], pending=True)
    try:
        caller: identity.Resolved | None = await identity.resolve_writer(
            deps, principal, conversation_id=body.conversation_id, channel=body.channel,
            customer=body.customer, create=False)
    except NotFound:
        caller = None  # a call we have never seen: it simply joins the code's customer
    merged: list[str] = []
    if caller is not None and caller.customer_id != target:
        merged = await identity.merge(deps, tenant, target, caller.customer_id,
                                      via="continuation")
    now = deps.now_ms()
    change = CustomerWrite(events=[("continuation.redeemed", codec.pack(
        {"conversation_id": body.conversation_id, "channel": body.channel,
         "handoff_id": record.get("handoff_id"), "at": now}))])
    conversation_record(change, body.conversation_id, channel=body.channel, source=body.source,
                        started_ms=now, by=principal.key_id)
    if caller is not None:
        identity.identity_records(caller, channel=body.channel,
                                  conversation_id=body.conversation_id, now_ms=now,
                                  change=change)
    target, _ = await identity.write(deps, tenant, target, change)
    # The call's own identities (its number, the call id) now lead to the chat's customer.
    await deps.store.link(tenant, target, conversations=[body.conversation_id],
                          identities=own, ttl_ms=deps.retention_ms(tenant), overwrite=True)
    return RedeemResult(customer_id=target, handoff_id=record.get("handoff_id"), merged=merged)
