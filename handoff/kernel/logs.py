"""Logging that cannot leak a card number or a credential: every record is masked before any
handler sees it, aiohttp's own included (its parser errors quote the raw request).

Each request runs in a `RequestContext` (a context variable set by the access middleware), so
every line logged while serving it, in any layer, carries its request id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from handoff.kernel.masking import mask_text

LogFormat = Literal["auto", "json", "text"]
# aiohttp logs under these names, and neither they nor their records pass any of ours.
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.client",
                   "aiohttp.internal")
REDACTED = "[REDACTED]"
# What a caller authenticates with, wherever a line quotes it: an API key (`hk_` then URL-safe
# base64) or a panel token (`dt_<payload>.<signature>`) anywhere, even glued to a repr escape
# like `\nhk_...`; whatever `access_token=` carries; the whole value of an Authorization
# header, however it is quoted; and credentials after their scheme (Basic hides the key in
# base64). Each keeps what names it, so the line still says what was there.
CREDENTIAL = re.compile(
    r"(?i)(hk_|dt_)[A-Za-z0-9_.~-]{6,}"
    r"|(access_token=)[^&\s'\"\\]+"
    r"|((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\\\r\n]+"
    r"|\b((?:basic|bearer)\s+)[A-Za-z0-9+/_.~-]{12,}=*")
# Words without which CREDENTIAL cannot match: finding none is many times cheaper than the regex.
CREDENTIAL_HINTS = ("hk_", "dt_", "access_token", "authorization", "basic", "bearer")


def _keep_name(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group) + REDACTED


def redact(text: str) -> str:
    """`text` with credentials replaced by `[REDACTED]` and card numbers masked."""
    # Credentials first: a run of digits inside a key could otherwise be masked as a card
    # number, splitting the key so that its tail no longer looks like one.
    lowered = text.lower()
    if any(hint in lowered for hint in CREDENTIAL_HINTS):
        text = CREDENTIAL.sub(_keep_name, text)
    return mask_text(text)


def holds_credential(text: str) -> bool:
    """Whether `text` may carry an API key or a panel token: cheap enough for every request."""
    lowered = text.lower()
    return "hk_" in lowered or "dt_" in lowered


class MaskCardNumbers(logging.Filter):
    """Render the message, mask card numbers and redact credentials, keep only the result.

    A record that vouches for itself (`fields_safe`: the access line, written for every request,
    made of route templates, checked ids and numbers) is passed as it is: the mask would cost
    every request a regex pass and find nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "fields_safe", False):
            return True
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info, record.exc_text = None, text
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def logger(name: str) -> logging.Logger:
    """A logger whose own records are masked wherever they end up (filters do not inherit)."""
    log = logging.getLogger(name)
    if not any(isinstance(f, MaskCardNumbers) for f in log.filters):
        log.addFilter(MaskCardNumbers())
    return log


@dataclass
class RequestContext:
    """What a log line may say about the request being served."""

    request_id: str
    customer_id: str | None = None


_request: ContextVar[RequestContext | None] = ContextVar("handoff_request", default=None)


def begin_request(request_id: str) -> tuple[RequestContext, Token[RequestContext | None]]:
    context = RequestContext(request_id)
    return context, _request.set(context)


def end_request(token: Token[RequestContext | None]) -> None:
    _request.reset(token)


def current_request() -> RequestContext | None:
    return _request.get()


def note_customer(customer_id: str) -> None:
    """The request being served concerns this customer (logged by id, never by identity)."""
    context = _request.get()
    if context is not None:
        context.customer_id = customer_id


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, "fields", None) or {}
    context = _request.get()
    if context is not None and "request_id" not in fields:
        fields = {"request_id": context.request_id, **fields}
    return fields


def _timestamp(created: float) -> str:
    """`2026-11-23T10:02:00.123Z`; the part up to the second is the same for many lines."""
    second = int(created)
    if _last_second[0] != second:
        _last_second[:] = [second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S")]
    return f"{_last_second[1]}.{int((created - second) * 1000):03d}Z"


_last_second: list[Any] = [None, ""]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(), **_fields(record)}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        text = _encode(line)
        # Fields bypass the message filter, so the finished line is masked as a whole, unless the
        # logger vouches that every field is already safe: the access line, written for every
        # request, whose fields are templates, ids and numbers (the mask is half its cost).
        return text if getattr(record, "fields_safe", False) else redact(text)


def _encode(line: dict[str, Any]) -> str:
    """One JSON log line."""
    try:
        return orjson.dumps(line, default=str).decode()
    except TypeError:  # an integer past 64 bits, say: the slow encoder takes anything
        return json.dumps(line, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: the message, then `key=value` fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        line = f"{text} {fields}" if fields else text
        return line if getattr(record, "fields_safe", False) else redact(line)


class BatchedStream(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines of one event-loop iteration to the stream in one write.

    A busy server logs a line per request; a write and a flush each cost a system call. Outside
    a running loop (start-up, shutdown, a command) every line is written at once, and nothing
    waits longer than the iteration that logged it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)
            return
        self.add_line(line)

    def add_line(self, line: str) -> None:
        """Queue a finished line for this iteration's write."""
        self._lines.append(line)
        if not self._scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                self._scheduled = True
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        lines, self._lines = self._lines, []
        if lines:
            self.acquire()
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed or full stderr must not fail a request
                pass
            finally:
                self.release()

    def close(self) -> None:
        self.flush()
        super().close()


def configure(level: str, fmt: LogFormat = "text") -> None:
    """Log to stderr at `level`, masked, whoever logs (handoff, aiohttp, redis).

    `auto` writes text to a terminal and JSON lines anywhere else (a file, a pipe, a collector).
    aiohttp's loggers get the mask on the logger itself too, so a handler attached to one
    directly (not through the root) is never handed a raw request either.
    """
    for name in AIOHTTP_LOGGERS:
        logger(name)
    # Neither format shows the caller's file, thread or process, and a busy server writes a
    # line per request: the logging HOWTO's "Optimization" switches spare each record finding
    # them (a stack walk and three lookups).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = BatchedStream()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MaskCardNumbers())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _json_handler[0] = handler if fmt == "json" else None


# The JSON handler `configure` installed, while it is the only place a line can go.
_json_handler: list[BatchedStream | None] = [None]


def safe_info_line(log: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """Log `message` at INFO with `fields` that are safe by construction (nothing to mask).

    The access line, one per request: where the line can only reach the JSON handler (no
    handler of its own, the root's only one ours), it is built as that handler would and
    queued directly, without a LogRecord and the handler chain.
    """
    handler = _json_handler[0]
    root = logging.root
    if (handler is None or log.handlers or not log.propagate or len(root.handlers) != 1
            or root.handlers[0] is not handler or handler.level > logging.INFO):
        log.info("%s", message, extra={"fields": fields, "fields_safe": True})
        return
    handler.add_line(_encode({"ts": _timestamp(time.time()), "level": "info",
                              "logger": log.name, "message": message, **fields}))
