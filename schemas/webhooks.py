"""Outbound webhooks: subscriptions, the events they receive, and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from schemas.common import Model, Record

EventType = Literal["handoff.requested", "handoff.accepted", "handoff.resolved",
                    "handoff.cancelled", "handoff.expired", "handoff.handed_back",
                    "identity.verified",
                    "turn.appended", "customer.merged", "fact.set", "continuation.redeemed",
                    "alert.raised", "alert.acknowledged", "*"]
EVENT_TYPES: tuple[str, ...] = tuple(t for t in get_args(EventType) if t != "*")


def _web_url(value: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it."""
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError("not a URL") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise ValueError("the URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not belong in the URL: check the signature instead")
    if parts.fragment:
        raise ValueError("a URL fragment is never sent; leave it out")
    if port == 0:
        raise ValueError("port 0 cannot be reached")
    return value


WebUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048,
                                          pattern=r"^[\x21-\x7e]+$"),
                   AfterValidator(_web_url)]
Description = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class WebhookIn(Model):
    """A subscription: where to POST, and which event types (`*`: all of them)."""

    url: WebUrl
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES) + 1)]
    description: Description | None = None


class Webhook(Record):
    """A subscription as operators see it: never its signing secret."""

    id: str
    tenant: str
    url: str
    events: list[str]
    description: str | None = None
    created_at: datetime
    secret_rotated_at: datetime | None = None


class NewWebhook(Webhook):
    """A subscription just made or re-keyed: `secret` is shown this once and never again."""

    secret: str


class WebhookEvent(Record):
    """The JSON body every delivery POSTs (`Handoff-Signature` signs it)."""

    id: str = Field(description="the event's id: the same in every attempt and subscription")
    type: str
    tenant: str
    created_at: datetime
    data: dict[str, Any] = Field(description="what the live event stream carries: "
                                             "`customer_id` and the changed `record`")


class DeadLetter(Record):
    """A delivery that failed every attempt; it can be sent again."""

    id: str = Field(description="the delivery id (the `Handoff-Delivery-Id` header)")
    webhook_id: str
    event_id: str
    type: str
    customer_id: str | None = None
    created_at: datetime
    failed_at: datetime
    attempts: int
    last_status: int | None = Field(default=None, description="the last HTTP status, if any")
    last_error: str | None = None


class Redelivery(Record):
    id: str
    webhook_id: str
    status: Literal["queued"] = "queued"
