"""Vendor formats in and out: each adapter maps one vendor's payloads onto the core services.

A new vendor is one module with an `adapter` and one line in `ADAPTERS`.
"""

from __future__ import annotations

from adapters import amazon_connect, twilio_voice
from adapters.base import Adapter

ADAPTERS: tuple[Adapter, ...] = (
    twilio_voice.adapter,
    amazon_connect.adapter,
)
