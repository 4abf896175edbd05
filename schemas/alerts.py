"""Supervisor alerts: a customer's flagged turn, once per customer and flag kind until
acknowledged."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import ConfigDict

from schemas import examples as ex
from schemas.common import Channel, Model, Name, Record

Severity = Literal["low", "medium", "high"]
AlertStatus = Literal["open", "acknowledged"]
ALERT_STATUSES: tuple[str, ...] = get_args(AlertStatus)

ALERT: dict[str, object] = {
    "id": "al_01KAQ7X2D5F8H1J4K7M0N3P6QR", "customer_id": ex.CUSTOMER, "kind": "legal",
    "severity": "high", "terms": ["lawsuit"],
    "turn": {"id": "t9", "conversation_id": "CA9f2", "channel": "voice",
             "text": "Third time I call about this; next it is a lawsuit",
             "ts": "2026-11-23T10:16:30Z"},
    "raised_at": "2026-11-23T10:16:31Z", "status": "open", "acknowledged_by": None,
    "acknowledged_at": None}


class AlertTurn(Record):
    """The customer's turn that raised the alert, as stored (card numbers masked)."""

    id: str
    conversation_id: str
    channel: Channel
    text: str
    ts: datetime


class Alert(Record):
    """A risk alert for the tenant's supervisors: what the customer said, which flag kind it
    raised and how severe the tenant rates it, and whether a supervisor has seen to it."""

    model_config = ConfigDict(json_schema_extra=ex.examples(ALERT))

    id: str
    customer_id: str
    kind: str
    severity: Severity
    terms: list[str]
    turn: AlertTurn
    raised_at: datetime
    status: AlertStatus
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None


class AckIn(Model):
    """Who acknowledges (a panel token always acknowledges as its own supervisor; without
    either, the key's id is recorded)."""

    supervisor_id: Name | None = None
