"""What every `HandoffClient` call goes through: one HTTP exchange, retried within the
policy, its answer decoded into a `schemas` model or raised as a `handoff.client.errors` error;
and the opening of event streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgpack
from pydantic import BaseModel, ValidationError

from handoff.client.errors import ProblemError, TransportError, problem_error
from handoff.client.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from handoff.client.sse import EventStream
from schemas.common import Page, Problem

log = logging.getLogger("handoff.client")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Body = BaseModel | Mapping[str, Any]
JSON, MSGPACK = "application/json", "application/msgpack"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str


def ref(value: str) -> str:
    """A customer reference (`cus_...` or `kind:value`) as one path segment."""
    return quote(value, safe=":@")


def model_of(model: type[M], body: Body | None) -> M:
    if body is None:
        return model()
    if isinstance(body, model):
        return body
    if isinstance(body, BaseModel):
        body = body.model_dump(exclude_unset=True)
    return model.model_validate(body)


class Connection:
    """One service URL and one API key: the transport under `HandoffClient`."""

    def __init__(self, url: str, key: str, *, retry: RetryPolicy | None = None,
                 timeout: float = 10.0, agent_id: str | None = None, msgpack: bool = False,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}",
                         "Accept": f"{MSGPACK if msgpack else JSON}, application/problem+json"}
        if agent_id:
            self._headers["X-Agent-Id"] = agent_id
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._msgpack = msgpack
        self._session = session
        self._owns_session = session is None

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _send(self, method: str, path: str, *, body: BaseModel | None = None,
                    params: Mapping[str, str | int | None] | None = None,
                    headers: Mapping[str, str] | None = None, idempotent: bool = True,
                    policy: RetryPolicy | None = None, ok: tuple[int, ...] = (200, 201)
                    ) -> Answer:
        """One call, retried within the policy; answers a 2xx/3xx or raises."""
        policy = policy or self.retry
        data, all_headers = None, {**self._headers, **(headers or {})}
        if body is not None:
            payload = body.model_dump(mode="json", exclude_unset=True)
            if self._msgpack:
                data, all_headers["Content-Type"] = msgpack.packb(payload), MSGPACK
            else:
                data = body.model_dump_json(exclude_unset=True).encode()
                all_headers["Content-Type"] = JSON
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        loop = asyncio.get_running_loop()
        started, attempt = loop.time(), 0
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with self.session.request(method, self.url + path, data=data,
                                                params=query, headers=all_headers,
                                                timeout=timeout, allow_redirects=False) as r:
                    answer = Answer(r.status, r.headers, await r.read(), r.content_type)
            except (TimeoutError, aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError,
                    aiohttp.ClientOSError) as exc:
                # Refused means nothing was sent; otherwise only repeat what is safe to repeat.
                safe = idempotent or isinstance(exc, aiohttp.ClientConnectorError)
                wait = (policy.next_wait(attempt, None, policy.total - (loop.time() - started))
                        if safe else None)
                if wait is None:
                    raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}"
                                         ) from exc
                log.info("%s %s: %s; retry %d in %.2fs", method, path, type(exc).__name__,
                         attempt, wait)
                await asyncio.sleep(wait)
                continue
            if answer.status in ok or answer.status == 304:
                return answer
            error = self._error(answer)
            if answer.status in RETRY_STATUSES:
                retry_after = error.retry_after
                wait = policy.next_wait(attempt, retry_after,
                                        policy.total - (loop.time() - started))
                if wait is not None:
                    log.info("%s %s: %d; retry %d in %.2fs", method, path, answer.status,
                             attempt, wait)
                    await asyncio.sleep(wait)
                    continue
            raise error

    def _error(self, answer: Answer) -> ProblemError:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        try:
            problem = Problem.model_validate_json(answer.body)
        except ValidationError:
            problem = Problem(title=f"HTTP {answer.status}", status=answer.status,
                              detail=answer.body[:200].decode("utf-8", "replace") or None)
        return problem_error(problem, retry_after)

    def _decode(self, answer: Answer, model: type[M]) -> M:
        if answer.content_type == MSGPACK:
            return model.model_validate(msgpack.unpackb(answer.body, raw=False))
        return model.model_validate_json(answer.body)

    async def _call(self, model: type[M], method: str, path: str, **options: Any) -> M:
        return self._decode(await self._send(method, path, **options), model)

    def _stream(self, path: str, last_event_id: str | None) -> EventStream:
        async def opener(after: str | None) -> aiohttp.ClientResponse:
            headers = {**self._headers, "Accept": "text/event-stream"}
            if after:
                headers["Last-Event-ID"] = after
            # The service sends a keep-alive every few seconds: silence means a dead link.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                            sock_read=max(30.0, self.timeout))
            try:
                response = await self.session.get(self.url + path, headers=headers,
                                                  timeout=timeout)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                raise TransportError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
            if response.status != 200:
                answer = Answer(response.status, response.headers, await response.read(),
                                response.content_type)
                response.release()
                raise self._error(answer)
            return response

        return EventStream(opener, last_event_id=last_event_id, policy=self.retry)


async def pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Every item of a paged list: `fetch(before)` answers the page after cursor `before`."""
    before: str | None = None
    while True:
        page = await fetch(before)
        for item in page.items:
            yield item
        if not page.next:
            return
        before = page.next
