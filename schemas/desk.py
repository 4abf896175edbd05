"""The embeddable agent panel: its tokens and the re-ask check it runs before a reply is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.common import Model, Name, Record


class TokenIn(Model):
    agent_id: Name
    minutes: Annotated[int, Field(ge=1, le=720, description="how long the token is good for")] = 60


class DeskToken(Record):
    """A panel token; open `panel_url` (the token rides in its fragment, never sent to a
    server) or send it as `Authorization: Bearer`."""

    token: str
    tenant: str
    agent_id: str
    expires_at: datetime
    panel_url: str


class ReaskCheckIn(Model):
    text: Annotated[str, StringConstraints(max_length=16000)]


class Reask(Record):
    """A topic the text asks for although the customer's context already holds it, under the
    brief's fact keys or identity kinds in `known` (values are read from the brief, which is
    where reads are audited)."""

    topic: str
    phrase: str
    known: list[str]


class ReaskCheck(Record):
    reasks: list[Reask]
