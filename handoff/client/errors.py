"""What a HandoffClient call raises: the service's problem+json as typed exceptions.

    ClientError
    ├── TransportError           the request got no answer (refused, reset, timed out)
    ├── StreamError              an event stream could not be kept open
    └── ProblemError             the service answered 4xx/5xx; carries the problem+json
        ├── BadRequestError          400
        ├── UnauthorizedError        401
        ├── ForbiddenError           403
        ├── NotFoundError            404 (also anything of another tenant)
        ├── ConflictError            409
        ├── PayloadTooLargeError     413
        ├── UnsupportedMediaError    415
        ├── UnprocessableError       422 (`errors` lists each field)
        ├── RateLimitedError         429 (`retry_after`)
        └── UnavailableError         503 (`retry_after`)
"""

from __future__ import annotations

from typing import Any

from schemas.common import Problem


class ClientError(Exception):
    """Anything a HandoffClient call can raise."""


class TransportError(ClientError):
    """No HTTP answer at all: the connection was refused, reset or timed out."""


class StreamError(ClientError):
    """An event stream failed to reopen within the retry policy's limits."""


class ProblemError(ClientError):
    """The service answered an error; `problem` is its RFC 9457 body."""

    def __init__(self, problem: Problem, retry_after: float | None = None) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail or ''}".rstrip(": "))
        self.problem = problem
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Field errors of a 422 as `{loc, msg}` dicts; empty for other statuses."""
        return [e.model_dump() for e in self.problem.errors or []]


class BadRequestError(ProblemError):
    pass


class UnauthorizedError(ProblemError):
    pass


class ForbiddenError(ProblemError):
    pass


class NotFoundError(ProblemError):
    pass


class ConflictError(ProblemError):
    pass


class PayloadTooLargeError(ProblemError):
    pass


class UnsupportedMediaError(ProblemError):
    pass


class UnprocessableError(ProblemError):
    pass


class RateLimitedError(ProblemError):
    pass


class UnavailableError(ProblemError):
    pass


BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequestError, 401: UnauthorizedError, 403: ForbiddenError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 415: UnsupportedMediaError,
    422: UnprocessableError, 429: RateLimitedError, 503: UnavailableError,
}


def problem_error(problem: Problem, retry_after: float | None = None) -> ProblemError:
    """The exception class for the problem's status (ProblemError for any other)."""
    return BY_STATUS.get(problem.status, ProblemError)(problem, retry_after)
