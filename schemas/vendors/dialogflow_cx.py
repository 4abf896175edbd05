"""Dialogflow CX webhooks: the `WebhookRequest` it sends and the `WebhookResponse` it expects.

https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookRequest and
https://cloud.google.com/dialogflow/cx/docs/reference/rest/v3/WebhookResponse
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.vendors import VendorModel


class FulfillmentInfo(VendorModel):
    tag: str | None = None


class IntentParameter(VendorModel):
    originalValue: str | None = None
    resolvedValue: Any = None


class IntentInfo(VendorModel):
    lastMatchedIntent: str | None = None
    displayName: str | None = None
    parameters: dict[str, IntentParameter] | None = None
    confidence: float | None = None


class ParameterInfo(VendorModel):
    displayName: str
    required: bool | None = None
    state: str | None = None
    value: Any = None
    justCollected: bool | None = None


class FormInfo(VendorModel):
    parameterInfo: list[ParameterInfo] = []


class PageInfo(VendorModel):
    currentPage: str | None = None
    displayName: str | None = None
    formInfo: FormInfo | None = None


class SessionInfo(VendorModel):
    session: str | None = None
    parameters: dict[str, Any] | None = None


class Text(VendorModel):
    text: list[str] = []


class OutputAudioText(VendorModel):
    text: str | None = None
    ssml: str | None = None


class ResponseMessage(VendorModel):
    """One of the agent's responses; only the kinds a transcript can show are read."""

    text: Text | None = None
    outputAudioText: OutputAudioText | None = None
    liveAgentHandoff: dict[str, Any] | None = Field(
        default=None, description="the agent asked for a human; its `metadata` is free-form")


class WebhookRequest(VendorModel):
    detectIntentResponseId: str | None = None
    text: str | None = None
    triggerIntent: str | None = None
    transcript: str | None = None
    triggerEvent: str | None = None
    dtmfDigits: str | None = None
    languageCode: str | None = None
    fulfillmentInfo: FulfillmentInfo | None = None
    intentInfo: IntentInfo | None = None
    pageInfo: PageInfo | None = None
    sessionInfo: SessionInfo | None = None
    messages: list[ResponseMessage] = []
    payload: dict[str, Any] | None = None


class ResponseText(VendorModel):
    text: list[str]


class OutMessage(VendorModel):
    text: ResponseText


class FulfillmentResponse(VendorModel):
    messages: list[OutMessage]
    mergeBehavior: Literal["MERGE_BEHAVIOR_UNSPECIFIED", "APPEND", "REPLACE"] = "APPEND"


class OutSessionInfo(VendorModel):
    parameters: dict[str, Any]


class WebhookResponse(VendorModel):
    """What the webhook answers: empty unless a hand-off was requested or an agent handed the
    customer back."""

    fulfillmentResponse: FulfillmentResponse | None = None
    sessionInfo: OutSessionInfo | None = None
