"""Amazon Connect contact-flow Lambda events
(https://docs.aws.amazon.com/connect/latest/adminguide/connect-lambda-functions.html)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.vendors import VendorModel

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Value = Annotated[str, StringConstraints(max_length=4000)]


class EndpointData(VendorModel):
    Address: Annotated[str, StringConstraints(max_length=256)] | None = None
    Type: Annotated[str, StringConstraints(max_length=64)] | None = None


class QueueData(VendorModel):
    ARN: Annotated[str, StringConstraints(max_length=512)] | None = None
    Name: Annotated[str, StringConstraints(max_length=256)] | None = None


class Contact(VendorModel):
    ContactId: Id
    InitialContactId: Id | None = None
    PreviousContactId: Id | None = None
    Channel: Annotated[str, StringConstraints(max_length=32)] = "VOICE"
    InitiationMethod: Annotated[str, StringConstraints(max_length=64)] | None = None
    CustomerEndpoint: EndpointData | None = None
    SystemEndpoint: EndpointData | None = None
    # The older admin guide shows the queue as a bare name, the newer docs as an object.
    Queue: QueueData | Annotated[str, StringConstraints(max_length=256)] | None = None
    Attributes: Annotated[dict[str, Value], Field(max_length=500)] = {}
    InstanceARN: Annotated[str, StringConstraints(max_length=512)] | None = None

    @property
    def queue_name(self) -> str | None:
        return self.Queue.Name if isinstance(self.Queue, QueueData) else self.Queue


class EventDetails(VendorModel):
    ContactData: Contact
    Parameters: Annotated[dict[str, Value], Field(max_length=100)] = {}


class ContactFlowEvent(VendorModel):
    """What Connect's "Invoke AWS Lambda function" block sends, forwarded unchanged."""

    Details: EventDetails
    Name: Annotated[str, StringConstraints(max_length=64)] | None = None
