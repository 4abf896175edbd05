"""The errors handoff answers with, each rendered as RFC 9457 problem+json.

    HandoffError
    ├── BadRequest            400  the body does not parse
    ├── Unauthorized          401  no key, or a key we do not know
    ├── Forbidden             403  the key's role may not use this route (or name customers so)
    ├── NotFound              404  no such thing in this tenant (other tenants' things included)
    ├── Conflict              409  the state forbids it (already accepted, code used)
    ├── PayloadTooLarge       413
    ├── UnsupportedMediaType  415
    ├── Unprocessable         422  parses but does not validate (carries `errors`)
    ├── TooManyRequests       429  carries `retry_after`
    └── StoreUnavailable      503  Redis is away; carries `retry_after`
"""

from __future__ import annotations

from typing import Any


def with_article(word: str) -> str:
    """`word` after the article it is read with: "a bot", "an agent", "an ivr", "an admin"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class HandoffError(Exception):
    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extra = extra

    @property
    def type(self) -> str:
        return f"https://handoff.dev/problems/{self.slug}"


class BadRequest(HandoffError):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(HandoffError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(HandoffError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(HandoffError):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(HandoffError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(HandoffError):
    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class UnsupportedMediaType(HandoffError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class Unprocessable(HandoffError):
    status, title, slug = 422, "Unprocessable Content", "validation"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class TooManyRequests(HandoffError):
    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreUnavailable(HandoffError):
    status, title, slug = 503, "Service Unavailable", "store-unavailable"

    def __init__(self, detail: str = "the store is unavailable", retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
