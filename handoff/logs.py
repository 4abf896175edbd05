"""Logging that cannot leak a card number: every record is masked before any handler sees it.

Each request runs in a `RequestContext` (a context variable set by the access middleware), so
every line logged while serving it, in any layer, carries its request id.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from handoff.services.masking import mask_text

LogFormat = Literal["auto", "json", "text"]


class MaskCardNumbers(logging.Filter):
    """Render the message, mask it, and keep only the masked text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info, record.exc_text = None, text
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                  .replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(), **_fields(record)}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        text = json.dumps(line, separators=(",", ":"), default=str)
        # Fields bypass the message filter, so the finished line is masked as a whole, unless the
        # logger vouches that every field is already safe: the access line, written for every
        # request, whose fields are templates, ids and numbers (the mask is half its cost).
        return text if getattr(record, "fields_safe", False) else mask_text(text)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: the message, then `key=value` fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        return mask_text(f"{text} {fields}" if fields else text)


def configure(level: str, fmt: LogFormat = "text") -> None:
    """Log to stderr at `level`, masked, whoever logs (handoff, aiohttp, redis).

    `auto` writes text to a terminal and JSON lines anywhere else (a file, a pipe, a collector).
    """
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MaskCardNumbers())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
