"""Logging that cannot leak a card number: every record is masked before any handler sees it."""

from __future__ import annotations

import logging

from handoff.services.masking import mask_text


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


def configure(level: str) -> None:
    """Log to stderr at `level`, masked, whoever logs (handoff, aiohttp, redis)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(MaskCardNumbers())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
