"""Amazon Lex V2 code hooks: the Lambda input event and the response Lex expects back.

https://docs.aws.amazon.com/lexv2/latest/dg/lambda-input-format.html and
https://docs.aws.amazon.com/lexv2/latest/dg/lambda-response-format.html

The session state and the intent are echoed back to Lex as received (Lex replaces its session
state with the response's), so those models keep fields they do not name.
"""

from __future__ import annotations

from typing import Any, Literal

from schemas.vendors import EchoedModel, VendorModel


class SlotValue(EchoedModel):
    originalValue: str | None = None
    interpretedValue: str | None = None
    resolvedValues: list[str] | None = None


class Slot(EchoedModel):
    shape: str | None = None
    value: SlotValue | None = None
    values: list[Slot] | None = None


class Intent(EchoedModel):
    name: str
    slots: dict[str, Slot | None] | None = None
    state: str | None = None
    confirmationState: str | None = None


class Interpretation(VendorModel):
    intent: Intent | None = None
    nluConfidence: float | None = None


class DialogAction(EchoedModel):
    type: str
    slotToElicit: str | None = None


class SessionState(EchoedModel):
    sessionAttributes: dict[str, str] | None = None
    intent: Intent | None = None
    originatingRequestId: str | None = None
    dialogAction: DialogAction | None = None


class Bot(VendorModel):
    id: str | None = None
    name: str | None = None
    aliasId: str | None = None
    localeId: str | None = None


class LexEvent(VendorModel):
    messageVersion: str | None = None
    invocationSource: str | None = None
    inputMode: str | None = None
    sessionId: str
    inputTranscript: str | None = None
    interpretations: list[Interpretation] = []
    sessionState: SessionState
    requestAttributes: dict[str, str] | None = None
    bot: Bot | None = None


class Message(VendorModel):
    contentType: Literal["PlainText", "SSML", "CustomPayload", "ImageResponseCard"]
    content: str


class ResponseState(EchoedModel):
    """The session state handed back: the input's, with the dialog action handoff decided."""

    dialogAction: dict[str, Any]
    sessionAttributes: dict[str, str]
    intent: dict[str, Any] | None = None


class LexResponse(VendorModel):
    sessionState: ResponseState
    messages: list[Message] | None = None
    requestAttributes: dict[str, str] | None = None
