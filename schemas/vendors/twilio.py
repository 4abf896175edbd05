"""Twilio Voice webhook parameters (https://www.twilio.com/docs/usage/webhooks/voice-webhooks).

Twilio posts these as an urlencoded form; the adapter turns the form's pairs into a dict first.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.vendors import VendorModel

CallSid = Annotated[str, StringConstraints(pattern=r"^CA[0-9A-Za-z]{1,62}$")]
Short = Annotated[str, StringConstraints(max_length=256)]


class VoiceCall(VendorModel):
    """The parameters of every voice request: who calls whom, on which call."""

    CallSid: CallSid
    AccountSid: Short | None = None
    From: Short = ""
    To: Short = ""
    CallStatus: Short = ""
    Direction: Short = ""
    ParentCallSid: Short | None = None


class GatherResult(VoiceCall):
    """A `<Gather>` action callback: the keys pressed, or what speech recognition heard."""

    Digits: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9*#wW]*$")] = ""
    SpeechResult: Annotated[str, StringConstraints(max_length=2000)] = ""
    Confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
