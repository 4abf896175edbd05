"""Vendor formats in and out: each adapter maps one vendor's payloads onto the core services.

A new vendor is one module with an `adapter` and one line in `ADAPTERS`.
"""

from __future__ import annotations

from adapters import amazon_connect, dialogflow_cx, lex_v2, rasa, twilio_voice
from adapters.base import Adapter

ADAPTERS: tuple[Adapter, ...] = (
    dialogflow_cx.adapter,
    lex_v2.adapter,
    rasa.adapter,
    twilio_voice.adapter,
    amazon_connect.adapter,
)
