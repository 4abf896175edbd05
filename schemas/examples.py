"""The API's main bodies, by example: shown in `/docs` as the models' schema examples.

Requests are the ones docs/api.md walks through (Ana's double charge, chat to phone to agent);
responses are what the service answers for that story.
"""

from __future__ import annotations

from typing import Any

CUSTOMER = "cus_01KAQ7V3M2X9RT5Y8ZB4C6D0EF"
HANDOFF = "ho_01KAQ7W8N4P2QS6T0VX3Y5Z7AB"
CHAT = {"kind": "chat", "value": "visitor-42"}

APPEND_TURNS: dict[str, Any] = {
    "customer": {"identities": [CHAT, {"kind": "email", "value": "Ana@Example.com"}]},
    "channel": "chat", "source": "acme-bot",
    "turns": [{"id": "t1", "role": "customer", "text": "I was charged twice",
               "ts": "2026-11-23T10:02:00Z"},
              {"id": "t2", "role": "bot", "text": "Which order?", "ts": "2026-11-23T10:02:05Z"}],
    "facts": {"order_number": "A-1001"}}
APPEND_RESULT: dict[str, Any] = {
    "customer_id": CUSTOMER, "conversation_id": "web-7f3a", "appended": 2, "duplicates": 0}

HAND_BACK_IN: dict[str, Any] = {
    "note": "Refunded the duplicate charge on order A-1001; confirmation email sent.",
    "to": "bot", "outcome": "resolved"}
HANDOFF_IN: dict[str, Any] = {
    "customer": {"identities": [CHAT]}, "conversation_id": "web-7f3a",
    "reason": "customer_request", "priority": 2, "queue": "billing",
    "intent": "billing.double_charge", "summary": "Charged twice for order A-1001",
    "continuation": True}
HANDOFF_OUT: dict[str, Any] = {
    "id": HANDOFF, "status": "pending", "customer_id": CUSTOMER,
    "conversation_id": "web-7f3a", "channel": "chat", "source": "acme-bot",
    "reason": "customer_request", "priority": 2, "queue": "billing",
    "intent": "billing.double_charge", "summary": "Charged twice for order A-1001",
    "created_at": "2026-11-23T10:03:00Z", "updated_at": "2026-11-23T10:03:00Z",
    "expires_at": "2026-11-23T11:03:00Z", "continuation_code": "482913",
    "continuation_expires_at": "2026-11-23T10:18:00Z"}

REDEEM_IN: dict[str, Any] = {
    "customer": {"identities": [{"kind": "phone", "value": "+1 (555) 010-4477"}]},
    "conversation_id": "CA9f2", "channel": "voice", "source": "acme-ivr"}
REDEEM_RESULT: dict[str, Any] = {"customer_id": CUSTOMER, "handoff_id": HANDOFF}

VERIFY_IN: dict[str, Any] = {
    "customer": {"identities": [{"kind": "phone", "value": "+15550104477"}]},
    "identity": {"kind": "account", "value": "88812345"}, "method": "pin", "level": "high",
    "channel": "voice", "conversation_id": "CA9f2", "expires_in": 1800}
VERIFY_RESULT: dict[str, Any] = {
    "customer_id": CUSTOMER, "verified": True, "merged": [],
    "expires_at": "2026-11-23T10:46:00Z"}

ACCEPT_IN: dict[str, Any] = {"agent_id": "agent-7"}

BRIEF: dict[str, Any] = {
    "customer": {"id": CUSTOMER, "identities": [
        {"kind": "phone", "value": "+15550104477", "verified": False, "linked": True,
         "channel": "voice", "first_seen": "2026-11-23T10:15:00Z"},
        {"kind": "account", "value": "88812345", "verified": True, "linked": False,
         "channel": "voice", "first_seen": "2026-11-23T10:16:00Z"},
        {"kind": "chat", "value": "visitor-42", "verified": False, "linked": True,
         "channel": "chat", "first_seen": "2026-11-23T10:02:00Z"},
        {"kind": "email", "value": "ana@example.com", "verified": False, "linked": False,
         "channel": "chat", "first_seen": "2026-11-23T10:02:00Z"}],
        "created_at": "2026-11-23T10:02:00Z"},
    "verifications": [{"identity": {"kind": "account", "value": "88812345"}, "method": "pin",
                       "level": "high", "verified_at": "2026-11-23T10:16:00Z",
                       "expires_at": "2026-11-23T10:46:00Z", "expired": False,
                       "channel": "voice", "conversation_id": "CA9f2", "source": "acme-ivr"}],
    "facts": {"order_number": {"value": "A-1001", "verified": False, "channel": "chat",
                               "conversation_id": "web-7f3a", "at": "2026-11-23T10:02:05Z"}},
    "do_not_ask": ["account", "order_number", "email", "phone"],
    "handoffs": [HANDOFF_OUT | {"continuation_code": None}],
    "journey": [{"channel": "chat", "conversation_id": "web-7f3a", "source": "acme-bot",
                 "started_at": "2026-11-23T10:02:00Z"},
                {"channel": "voice", "conversation_id": "CA9f2", "source": "acme-ivr",
                 "started_at": "2026-11-23T10:15:00Z"}],
    "turns": [{"id": "t1", "conversation_id": "web-7f3a", "channel": "chat", "role": "customer",
               "text": "I was charged twice", "ts": "2026-11-23T10:02:00Z"},
              {"id": "t2", "conversation_id": "web-7f3a", "channel": "chat", "role": "bot",
               "text": "Which order?", "ts": "2026-11-23T10:02:05Z"},
              {"id": "t9", "conversation_id": "CA9f2", "channel": "voice",
               "role": "customer", "text": "Third time I call about this; next it is a lawsuit",
               "ts": "2026-11-23T10:16:30Z"}],
    "flags": [{"kind": "legal", "term": "lawsuit", "turn_id": "t9"}],
    "summary": "Charged twice for order A-1001",
    "generated_at": "2026-11-23T10:17:00Z"}
ACCEPT_RESULT: dict[str, Any] = {
    "handoff": HANDOFF_OUT | {"status": "accepted", "agent_id": "agent-7",
                              "accepted_at": "2026-11-23T10:17:00Z", "expires_at": None,
                              "continuation_code": None},
    "context": BRIEF}

PROBLEM: dict[str, Any] = {
    "type": "https://handoff.dev/problems/conflict", "title": "Conflict", "status": 409,
    "detail": "the hand-off is accepted by agent-7", "instance": f"/v1/handoffs/{HANDOFF}/accept",
    "handoff_status": "accepted", "request_id": "4bf92f3577b34da6a3ce929d0e0e4736"}


def examples(*bodies: dict[str, Any]) -> dict[str, Any]:
    """A model's `json_schema_extra`: its examples, as JSON Schema and OpenAPI 3.1 expect."""
    return {"examples": list(bodies)}
