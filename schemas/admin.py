"""Operator shapes: API keys, erasure, the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from schemas.common import Model, Name, Record, Role


class KeyIn(Model):
    role: Role
    name: Name | None = None


class RotateIn(Model):
    grace_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] = 0


class ApiKey(Record):
    """A key as operators see it: never its secret."""

    id: str
    tenant: str
    role: str
    name: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None


class NewKey(ApiKey):
    """A key just made: `key` is shown this once and never again."""

    key: str


class Erasure(Record):
    """What `DELETE /v1/customers/{ref}` removed."""

    customer_id: str
    customers: list[str]
    keys: int
    index_entries: int
    handoffs: int
    queue_events: int
    webhook_deliveries: int = Field(
        default=0, description="queued webhook deliveries and dead letters that carried it")
    alerts: int = Field(default=0, description="supervisor alerts raised about it")


class AuditEntry(Record):
    id: str
    at: datetime
    key_id: str
    role: str
    what: str
    agent_id: str | None = None
    address: str | None = None
    customer: str = Field(description="keyed hash of the customer id (no identifier is kept)")
