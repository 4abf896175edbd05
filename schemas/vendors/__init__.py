"""Vendor payloads as the vendors publish them, one module per vendor.

Field names are spelled as each vendor spells them (lowerCamelCase for Google and AWS). Unknown
fields are ignored: vendors add fields without notice, and a new field must not break a webhook.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class VendorModel(BaseModel):
    """A vendor's object: unknown fields ignored, nothing coerced beyond pydantic's lax mode."""

    model_config = ConfigDict(extra="ignore")


class EchoedModel(BaseModel):
    """A vendor object that is sent back as received, unknown fields included."""

    model_config = ConfigDict(extra="allow")
