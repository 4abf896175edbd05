"""The adapter contract, and the core operations an adapter may call.

An adapter is one module in `adapters/` exposing `adapter = Adapter(...)`. It declares its
webhook routes under `/v1/adapters/{name}/` with the same endpoint table as the core API (so
roles are enforced and `/openapi.json` lists them), checks the vendor's own authentication where
the vendor has one, turns the vendor's payload into the core request models of `schemas/`, calls
the operations of `Core`, and answers in the vendor's format. It never touches the store.

Callers authenticate with a handoff API key of the role the route names, as
`Authorization: Bearer <key>`, or as the password of Basic credentials for vendors that can
only put credentials in the webhook URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from handoff.api.bodies import errors_of
from handoff.api.remote import client_address
from handoff.api.routing import Routes
from handoff.api.state import DEPS, LEXICON, PRINCIPAL
from handoff.kernel.errors import Unprocessable
from handoff.kernel.timefmt import moment
from handoff.services import (
    brief,
    continuations,
    conversations,
    facts,
    handoffs,
    identity,
    verification,
)
from handoff.services.deps import Principal
from schemas.brief import Brief, HumanContact
from schemas.common import Identity
from schemas.conversations import AppendResult, AppendTurns, FactsResult, PutFacts
from schemas.handoffs import Handoff, HandoffIn, RedeemIn, RedeemResult
from schemas.verification import VerifyIn, VerifyResult

M = TypeVar("M", bound=BaseModel)
PREFIX = "/v1/adapters/"


@dataclass(frozen=True)
class Adapter:
    """One vendor: its name (the URL segment), its routes and a line on what it does."""

    name: str
    routes: Routes
    summary: str

    def __post_init__(self) -> None:
        stray = [e.path for e in self.routes.endpoints
                 if not e.path.startswith(f"{PREFIX}{self.name}/")]
        if stray:
            raise ValueError(f"adapter {self.name} routes outside {PREFIX}{self.name}/: {stray}")


class Core:
    """The core operations, on behalf of the request's authenticated caller."""

    def __init__(self, request: web.Request) -> None:
        self._deps = request.app[DEPS]
        self._lexicon = request.app[LEXICON]
        self._address = client_address(request)
        self.principal: Principal = request[PRINCIPAL]

    async def append_turns(self, conversation_id: str, body: AppendTurns) -> AppendResult:
        return await conversations.append_turns(self._deps, self.principal, self._lexicon,
                                                conversation_id, body)

    async def put_facts(self, ref: str, body: PutFacts) -> FactsResult:
        return await facts.put_facts(self._deps, self.principal, ref, body)

    async def verify(self, body: VerifyIn) -> VerifyResult:
        return await verification.verify(self._deps, self.principal, body)

    async def request_handoff(self, body: HandoffIn,
                              idempotency_key: str | None) -> tuple[Handoff, bool]:
        """The hand-off, and whether this call created it (a retry answers the first one)."""
        return await handoffs.create(self._deps, self.principal, body, idempotency_key)

    async def redeem(self, code: str, body: RedeemIn) -> RedeemResult:
        return await continuations.redeem(self._deps, self.principal, code, body,
                                          address=self._address)

    def vendor_id(self, value: str) -> str:
        """A vendor's id as the core stores a conversation or turn id: unchanged, unless it
        holds a card number (the digit runs of random hex, a UUID or a numeric session id now
        and then pass the Luhn check) or is `.` or `..`; then `id-<last four>-<keyed digest>`,
        the same on every process and after restarts (`Privacy.safe_id`, which the core applies
        to ids posted to it directly too)."""
        return self._deps.privacy.safe_id(value)

    def digest(self, *parts: object) -> str:
        """A stable id from payload fields (80 bits, letters only), for vendors that give no id
        of their own; keyed, since the fields may hold what a customer said."""
        return self._deps.privacy.id_digest(
            "\x00".join("" if p is None else str(p) for p in parts))

    def now(self) -> datetime:
        """The service's clock, for vendor payloads that carry no time of their own."""
        return moment(self._deps.now_ms())

    def claimable(self, kind: str, value: str) -> bool:
        """Whether `value` is a well-formed identity of `kind`, so a claim of it is accepted."""
        try:
            identity.normalise(Identity(kind=kind, value=value))
        except (ValidationError, Unprocessable):
            return False
        return True

    async def last_human_contact(self, customer_id: str) -> HumanContact | None:
        """How the customer's last conversation with a person ended (the agent's note), so the
        bot's next turn continues from it; one small read."""
        return await brief.last_human_contact(self._deps, self.principal.tenant, customer_id)

    async def standing(self, customer_id: str) -> Brief:
        """A customer's brief without its transcript, for a vendor flow to branch on (whether
        verified, an open hand-off); only what the adapter answers leaves the service."""
        found, _ = await brief.build(self._deps, self.principal.tenant, customer_id, turns=0)
        return found


def build(model: type[M], data: Any, *, where: str) -> M:
    """A core request model from mapped vendor data; 422 naming the vendor field on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unprocessable(f"{where} cannot be mapped onto a {model.__name__}",
                            errors_of(exc, (where,))) from exc
