"""HandoffClient: every route of the service as a typed async method (the vendor adapters' routes
under /v1/adapters/ are for the vendors to call).

    async with HandoffClient("http://127.0.0.1:8080", key) as handoff:
        await handoff.append_turns("web-7f3a", {...})

Bodies may be the `schemas` models or plain dicts (validated here, before anything is sent);
answers are the `schemas` models. Errors are the exceptions of `handoff.client.errors`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

from handoff.client.retry import NO_RETRY
from handoff.client.sse import EventStream
from handoff.client.transport import Body, Connection, model_of, pages, ref
from schemas.admin import ApiKey, AuditEntry, Erasure, KeyIn, NewKey, RotateIn
from schemas.alerts import AckIn, Alert
from schemas.brief import AcceptResult, Brief
from schemas.caller import Caller
from schemas.common import Health, Page
from schemas.conversations import AppendResult, AppendTurns, FactsResult, PutFacts, Turn
from schemas.desk import DeskToken, ReaskCheck, ReaskCheckIn, TokenIn
from schemas.handoffs import (
    AcceptIn,
    CancelIn,
    HandBackIn,
    Handoff,
    HandoffIn,
    RedeemIn,
    RedeemResult,
    ResolveIn,
)
from schemas.kpis import Kpis
from schemas.verification import VerifyIn, VerifyResult
from schemas.webhooks import DeadLetter, NewWebhook, Redelivery, Webhook, WebhookIn

_PAGE_HANDOFFS, _PAGE_TURNS, _PAGE_AUDIT, _PAGE_KEYS = (
    Page[Handoff], Page[Turn], Page[AuditEntry], Page[ApiKey])
_PAGE_WEBHOOKS, _PAGE_DEAD_LETTERS, _PAGE_ALERTS = Page[Webhook], Page[DeadLetter], Page[Alert]


@dataclass(frozen=True)
class BriefSnapshot:
    """A brief with its ETag; `modified` is False when the service answered 304 and the brief
    is the one passed in as `cached`."""

    brief: Brief
    etag: str
    modified: bool = True


class HandoffClient(Connection):
    """An async client for one service URL and one API key.

    `retry` bounds how often and how long a call is repeated after 429 or 503 (honouring
    `Retry-After`) or a refused connection; `agent_id` is sent as `X-Agent-Id` for the audit
    trail; `msgpack=True` speaks msgpack instead of JSON.
    """

    async def __aenter__(self) -> HandoffClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- bots and IVRs --------------------------------------------------------------------

    async def append_turns(self, conversation_id: str, body: AppendTurns | Body
                           ) -> AppendResult:
        """Append turns; a retried post with the same turn ids adds nothing."""
        return await self._call(AppendResult, "POST",
                                f"/v1/conversations/{quote(conversation_id, safe='')}/turns",
                                body=model_of(AppendTurns, body))

    async def set_facts(self, customer: str, body: PutFacts | Body) -> FactsResult:
        """Set facts of a customer (`cus_...` or `kind:value`), merged by key."""
        return await self._call(FactsResult, "PUT", f"/v1/customers/{ref(customer)}/facts",
                                body=model_of(PutFacts, body))

    async def verify(self, body: VerifyIn | Body) -> VerifyResult:
        """Record that the customer proved an identity (ivr and agent keys)."""
        return await self._call(VerifyResult, "POST", "/v1/verifications",
                                body=model_of(VerifyIn, body))

    async def request_handoff(self, body: HandoffIn | Body, *,
                              idempotency_key: str | None = None) -> Handoff:
        """Ask for a human. Every retry of this call carries the same `Idempotency-Key` (one is
        made up when none is given), so a lost answer never makes a second hand-off."""
        key = idempotency_key or f"hc-{uuid.uuid4().hex}"
        return await self._call(Handoff, "POST", "/v1/handoffs", body=model_of(HandoffIn, body),
                                headers={"Idempotency-Key": key})

    async def cancel(self, handoff_id: str, *, note: str | None = None) -> Handoff:
        """Withdraw a hand-off no agent has taken (bot and ivr keys)."""
        body = CancelIn(note=note) if note is not None else CancelIn()
        return await self._call(Handoff, "POST", f"/v1/handoffs/{ref(handoff_id)}/cancel",
                                body=body, idempotent=False)

    async def redeem(self, code: str, body: RedeemIn | Body) -> RedeemResult:
        """Join the caller to the customer a continuation code was issued for (ivr keys)."""
        return await self._call(RedeemResult, "POST",
                                f"/v1/continuations/{quote(code, safe='')}/redeem",
                                body=model_of(RedeemIn, body), idempotent=False)

    # -- agent desks ----------------------------------------------------------------------

    async def list_handoffs(self, *, queue: str | None = None, status: str | None = None,
                            limit: int | None = None, before: str | None = None
                            ) -> Page[Handoff]:
        """One page of the queue: most urgent first, then oldest first."""
        return await self._call(_PAGE_HANDOFFS, "GET", "/v1/handoffs", params={
            "queue": queue, "status": status, "limit": limit, "before": before})

    def iter_handoffs(self, *, queue: str | None = None, status: str | None = None,
                      page_size: int = 100) -> AsyncIterator[Handoff]:
        """Every hand-off of the queue, page after page."""
        return pages(lambda b: self.list_handoffs(
            queue=queue, status=status, limit=page_size, before=b))

    async def get_handoff(self, handoff_id: str) -> Handoff:
        return await self._call(Handoff, "GET", f"/v1/handoffs/{ref(handoff_id)}")

    async def accept(self, handoff_id: str, agent_id: str) -> AcceptResult:
        """Claim a hand-off: the hand-off and the brief, or ConflictError if another agent has
        it (a retry by the same agent answers the claim again)."""
        return await self._call(AcceptResult, "POST", f"/v1/handoffs/{ref(handoff_id)}/accept",
                                body=AcceptIn(agent_id=agent_id))

    async def resolve(self, handoff_id: str, *, agent_id: str | None = None,
                      note: str | None = None) -> Handoff:
        fields = {k: v for k, v in (("agent_id", agent_id), ("note", note)) if v is not None}
        return await self._call(Handoff, "POST", f"/v1/handoffs/{ref(handoff_id)}/resolve",
                                body=ResolveIn(**fields), idempotent=False)

    async def hand_back(self, handoff_id: str, note: str, *, to: str = "bot",
                        outcome: Literal["resolved", "needs_follow_up"] = "resolved",
                        agent_id: str | None = None) -> Handoff:
        """Give the customer back to the bot (or a queue) with a note the bot continues from
        (agent keys, on a hand-off they accepted)."""
        body = HandBackIn(note=note, to=to, outcome=outcome, agent_id=agent_id)
        return await self._call(Handoff, "POST", f"/v1/handoffs/{ref(handoff_id)}/hand-back",
                                body=body, idempotent=False)

    async def context(self, customer: str, *, turns: int | None = None,
                      cached: BriefSnapshot | None = None) -> BriefSnapshot:
        """The brief. Pass the previous snapshot as `cached`: if nothing changed the service
        answers 304 and that snapshot comes back with `modified=False`."""
        headers = {"If-None-Match": cached.etag} if cached else None
        answer = await self._send("GET", f"/v1/customers/{ref(customer)}/context",
                                  params={"turns": turns}, headers=headers)
        etag = answer.headers.get("ETag", "")
        if answer.status == 304 and cached is not None:
            return BriefSnapshot(cached.brief, etag or cached.etag, modified=False)
        return BriefSnapshot(self._decode(answer, Brief), etag)

    async def turns(self, customer: str, *, limit: int | None = None,
                    before: str | None = None) -> Page[Turn]:
        """One page of the transcript, newest first."""
        return await self._call(_PAGE_TURNS, "GET", f"/v1/customers/{ref(customer)}/turns",
                                params={"limit": limit, "before": before})

    def iter_turns(self, customer: str, *, page_size: int = 500) -> AsyncIterator[Turn]:
        """The whole transcript, newest first."""
        return pages(lambda b: self.turns(customer, limit=page_size, before=b))

    def events(self, customer: str, *, last_event_id: str | None = None) -> EventStream:
        """Live changes of one customer, resumed after `last_event_id` if given."""
        return self._stream(f"/v1/customers/{ref(customer)}/events", last_event_id)

    def queue_events(self, *, last_event_id: str | None = None) -> EventStream:
        """Live changes of the tenant's hand-off queue."""
        return self._stream("/v1/handoffs/events", last_event_id)

    async def mint_desk_token(self, agent_id: str, *, minutes: int | None = None
                              ) -> DeskToken:
        """A short-lived token for the agent panel at /desk/, for one agent (agent keys).

        Safe to repeat: nothing is stored per token, so a second one is as good as the first."""
        body = (TokenIn(agent_id=agent_id) if minutes is None
                else TokenIn(agent_id=agent_id, minutes=minutes))
        return await self._call(DeskToken, "POST", "/v1/desk/tokens", body=body)

    async def reask_check(self, customer: str, text: str) -> ReaskCheck:
        """Would this reply ask the customer for something the context already holds?

        Safe to repeat: the check reads and records nothing."""
        return await self._call(ReaskCheck, "POST", f"/v1/customers/{ref(customer)}/reask-check",
                                body=ReaskCheckIn(text=text))

    # -- supervisors ----------------------------------------------------------------------

    async def alerts(self, *, status: Literal["open", "acknowledged"] = "open",
                     limit: int | None = None, before: str | None = None) -> Page[Alert]:
        """One page of the tenant's risk alerts of one status, newest first (supervisor keys)."""
        return await self._call(_PAGE_ALERTS, "GET", "/v1/alerts", params={
            "status": status, "limit": limit, "before": before})

    def iter_alerts(self, *, status: Literal["open", "acknowledged"] = "open",
                    page_size: int = 100) -> AsyncIterator[Alert]:
        return pages(lambda b: self.alerts(status=status, limit=page_size, before=b))

    async def acknowledge_alert(self, alert_id: str, *, supervisor_id: str | None = None
                                ) -> Alert:
        """Acknowledge an alert; again changes nothing and answers it as the first left it."""
        body = AckIn(supervisor_id=supervisor_id) if supervisor_id else AckIn()
        return await self._call(Alert, "POST", f"/v1/alerts/{ref(alert_id)}/ack", body=body)

    def alert_events(self, *, last_event_id: str | None = None) -> EventStream:
        """Live `alert.raised` and `alert.acknowledged` events of the tenant."""
        return self._stream("/v1/alerts/events", last_event_id)

    async def kpis(self, *, bucket: Literal["hour", "day"] = "hour", start: str | None = None,
                   end: str | None = None, queue: str | None = None) -> Kpis:
        """Effort KPIs per hour or UTC day, for one queue or all (supervisor and admin keys)."""
        return await self._call(Kpis, "GET", "/v1/kpis", params={
            "bucket": bucket, "from": start, "to": end, "queue": queue})

    # -- operators ------------------------------------------------------------------------

    async def erase(self, customer: str) -> Erasure:
        """Erase everything of a customer (admin keys)."""
        return await self._call(Erasure, "DELETE", f"/v1/customers/{ref(customer)}",
                                idempotent=False)

    async def audit(self, *, customer: str | None = None, limit: int | None = None,
                    before: str | None = None) -> Page[AuditEntry]:
        """Who read which customer's context, newest first (admin keys)."""
        return await self._call(_PAGE_AUDIT, "GET", "/v1/admin/audit", params={
            "customer": customer, "limit": limit, "before": before})

    def iter_audit(self, *, customer: str | None = None, page_size: int = 500
                   ) -> AsyncIterator[AuditEntry]:
        return pages(lambda b: self.audit(customer=customer, limit=page_size, before=b))

    async def list_keys(self) -> list[ApiKey]:
        return (await self._call(_PAGE_KEYS, "GET", "/v1/admin/keys")).items

    async def create_key(self, role: Literal["bot", "ivr", "agent", "supervisor", "admin"], *,
                         name: str | None = None) -> NewKey:
        """A new key of this tenant; its secret is in this answer only."""
        body = KeyIn(role=role, name=name) if name is not None else KeyIn(role=role)
        return await self._call(NewKey, "POST", "/v1/admin/keys", body=body, idempotent=False)

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._call(ApiKey, "DELETE", f"/v1/admin/keys/{ref(key_id)}")

    async def rotate_key(self, key_id: str, *, grace_seconds: int = 0) -> NewKey:
        return await self._call(NewKey, "POST", f"/v1/admin/keys/{ref(key_id)}/rotate",
                                body=RotateIn(grace_seconds=grace_seconds), idempotent=False)

    async def list_webhooks(self) -> list[Webhook]:
        """The tenant's webhook subscriptions, without their signing secrets (admin keys)."""
        return (await self._call(_PAGE_WEBHOOKS, "GET", "/v1/admin/webhooks")).items

    async def create_webhook(self, body: WebhookIn | Body) -> NewWebhook:
        """Subscribe a URL to event types; the signing secret is in this answer only."""
        # Not repeated: a request that did land would leave a second subscription behind.
        return await self._call(NewWebhook, "POST", "/v1/admin/webhooks",
                                body=model_of(WebhookIn, body), idempotent=False)

    async def delete_webhook(self, webhook_id: str) -> Webhook:
        """Unsubscribe; its queued deliveries and dead letters are dropped."""
        # Not repeated: had the first delete landed, the repeat would answer 404 and hide that.
        return await self._call(Webhook, "DELETE", f"/v1/admin/webhooks/{ref(webhook_id)}",
                                idempotent=False)

    async def rotate_webhook(self, webhook_id: str) -> NewWebhook:
        """A new signing secret, shown this once; later deliveries are signed with it."""
        # Repeated: a rotation whose answer was lost left a secret nobody has, so rotating again
        # loses nothing, and the secret that comes back is the one in force.
        return await self._call(NewWebhook, "POST",
                                f"/v1/admin/webhooks/{ref(webhook_id)}/rotate")

    async def dead_letters(self, webhook_id: str, *, limit: int | None = None,
                           before: str | None = None) -> Page[DeadLetter]:
        """One page of the deliveries that failed every attempt, newest event first."""
        return await self._call(_PAGE_DEAD_LETTERS, "GET",
                                f"/v1/admin/webhooks/{ref(webhook_id)}/dead-letters",
                                params={"limit": limit, "before": before})

    def iter_dead_letters(self, webhook_id: str, *, page_size: int = 100
                          ) -> AsyncIterator[DeadLetter]:
        """Every dead letter of a subscription, page after page."""
        return pages(lambda b: self.dead_letters(webhook_id, limit=page_size, before=b))

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Redelivery:
        """Queue a dead letter again (same delivery id, attempts counted afresh)."""
        # Not repeated: the letter leaves the list when queued, so a repeat of one that landed
        # would answer 404 as if there had been nothing to send.
        return await self._call(
            Redelivery, "POST",
            f"/v1/admin/webhooks/{ref(webhook_id)}/dead-letters/{ref(delivery_id)}/redeliver",
            idempotent=False, ok=(202,))

    # -- any key --------------------------------------------------------------------------

    async def whoami(self) -> Caller:
        """The key this client calls with: its tenant, role and id (UnauthorizedError if it is
        unknown, revoked or expired)."""
        return await self._call(Caller, "GET", "/v1/whoami")

    # -- operations -----------------------------------------------------------------------

    async def health(self) -> Health:
        """`/healthz`: the process is alive."""
        return await self._call(Health, "GET", "/healthz")

    async def ready(self) -> Health:
        """`/readyz`, answered as is (status "unavailable" while Redis is away), not retried."""
        answer = await self._send("GET", "/readyz", policy=NO_RETRY, ok=(200, 503))
        return self._decode(answer, Health)

    async def metrics(self) -> str:
        """`/metrics` in Prometheus' text format, for a quick look without a Prometheus."""
        return (await self._send("GET", "/metrics")).body.decode()

    async def openapi(self) -> dict[str, Any]:
        """The service's OpenAPI document."""
        document: dict[str, Any] = json.loads((await self._send("GET", "/openapi.json")).body)
        return document
