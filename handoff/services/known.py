"""Conversations this process has written to: enough to append a turn without resolving anyone.

A post to a conversation resolves its customer through the index and sends the identity and
conversation records along, and once they are stored neither changes anything. So after a write
that linked every identity its body named to the conversation's customer, a later post to that
conversation naming no other identity (and no other channel) sends only its turns, with the facts
and flags they bring. What keeps that exact:

- a customer merged meanwhile answers Moved: nothing was written, and the post takes the full
  path, which follows the merge and records on the survivor what it lacks;
- an erased one answers Gone (its tombstone outlives every entry here), as it would to a full
  write that resolved it just before: 404, and an erasure's index notice drops the entry here
  and on every other process, so the next post starts afresh;
- an entry is never kept longer than a remembered index entry, so the index entries of a busy
  conversation are re-read (and their Redis TTL refreshed) as often as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from handoff.kernel.memo import Memo
from handoff.store import Store
from handoff.store.customers import INDEX
from schemas.conversations import AppendTurns

# As long as `Customers` remembers an index entry (see `Customers.lookup`).
KEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Known:
    """A conversation whose customer, identities and conversation record are stored."""

    customer_id: str
    channel: str
    # Identities as bodies give them (kind, value), each linked to `customer_id`.
    identities: frozenset[tuple[str, str]]
    started_ms: int  # the conversation's start is at most this


class KnownConversations:
    """Per process, by the conversation's index entry name (which names its tenant)."""

    def __init__(self, store: Store, size: int = 100_000) -> None:
        self._store = store
        self._memo: Memo[str, Known] = Memo(size=size, ttl=KEEP_SECONDS)
        store.notices.listen(INDEX, self._heard)

    def _heard(self, names: list[str]) -> None:
        for name in names:
            self._memo.drop(name)

    def name(self, tenant: str, conversation_id: str) -> str:
        """How an entry is named: as the conversation's index entry, so its notices find it."""
        return self._store.customers.conversation_key(tenant, conversation_id)

    def find(self, name: str, body: AppendTurns) -> Known | None:
        """The conversation, if `body` needs nothing of it but the turns: no identity and no
        channel the last full write did not already record."""
        known = self._memo.get(name)
        if known is None or (body.channel is not None and body.channel != known.channel):
            return None
        if body.customer is not None and any(
                (i.kind, i.value) not in known.identities for i in body.customer.identities):
            return None
        return known

    def remember(self, name: str, known: Known) -> None:
        self._memo.set(name, known)

    def forget(self, name: str) -> None:
        self._memo.drop(name)
