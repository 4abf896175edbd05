"""An async Python client for handoff: `async with HandoffClient(url, key) as c: ...`."""

from handoff.client.client import BriefSnapshot, HandoffClient
from handoff.client.errors import (
    BadRequestError,
    ClientError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    RateLimitedError,
    StreamError,
    TransportError,
    UnauthorizedError,
    UnavailableError,
    UnprocessableError,
    UnsupportedMediaError,
)
from handoff.client.retry import RetryPolicy
from handoff.client.sse import Event, EventStream

__all__ = [
    "BadRequestError", "BriefSnapshot", "ClientError", "ConflictError", "Event", "EventStream",
    "ForbiddenError", "HandoffClient", "NotFoundError", "PayloadTooLargeError", "ProblemError",
    "RateLimitedError", "RetryPolicy", "StreamError", "TransportError", "UnauthorizedError",
    "UnavailableError", "UnprocessableError", "UnsupportedMediaError",
]
