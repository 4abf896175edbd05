"""Rasa tracker events: a tracker as `GET /conversations/{id}/tracker` exports it, and events as
an event broker publishes them.

Formats: https://rasa.com/docs/rasa/pages/http-api (the tracker) and
https://rasa.com/docs/rasa/action-server/events (event types), https://rasa.com/docs/rasa/event-brokers
Samples: tests/vendor_samples/rasa-tracker.json (Rasa's own test tracker) and
rasa-events-docs.json (the events page's snippets); SOURCES.md, section 5.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from tests.adapter_checks import card_like_session, only_role_may_post, refuses_raw_body
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, everything, not_an_attempt_counter, snapshot
from tests.scenario import assert_problem, brief_of, call, ok

Client = TestClient[Any, Any]
Json = dict[str, Any]
SAMPLES = Path(__file__).parent / "vendor_samples"
URL = "/v1/adapters/rasa/events"
T0 = 1_795_000_000.0  # epoch seconds: 2026-11-18


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"rasa-{name}.json").read_text())


def tracker() -> tuple[str, Json]:
    """Rasa's moodbot test tracker under a fresh sender id."""
    body: Json = sample("tracker")
    body["sender_id"] = sender = f"rasa-{uuid.uuid4().hex[:10]}"
    return sender, body


def broker_events(sender: str | None = None) -> tuple[str, list[Json]]:
    """The events page's snippets as a broker publishes them: each with sender and time."""
    sender = sender or f"rasa-{uuid.uuid4().hex[:10]}"
    events: list[Json] = sample("events-docs")
    for n, event in enumerate(events):
        event |= {"sender_id": sender, "timestamp": T0 + n}
    return sender, events


def at(seconds: float) -> str:
    """How the brief shows an event's time: to the millisecond, as turns are stored."""
    whole = datetime.fromtimestamp(int(seconds * 1000) / 1000, tz=UTC)
    return whole.isoformat().replace("+00:00", "Z")


async def post(client: Client, keys: Keys, body: Any, tenant: str = "acme") -> Json:
    result = await ok(client, "POST", URL, keys("bot", tenant), body)
    return result


async def test_an_exported_tracker_becomes_the_customers_turns_with_intents(
        client: Client, keys: Keys) -> None:
    sender, body = tracker()
    summary = await post(client, keys, body)
    [conversation] = summary["conversations"]
    assert (conversation["conversation_id"], conversation["appended"],
            conversation["duplicates"]) == (sender, 2, 0)
    assert summary["ignored"] == 5  # the five action events
    brief = await brief_of(client, keys, f"chat:{sender}")
    users = [e for e in body["events"] if e["event"] == "user"]
    assert [(t["role"], t["text"], t["intent"], t["confidence"], t["ts"])
            for t in brief["turns"]] == [
        ("customer", e["text"], e["parse_data"]["intent"]["name"],
         e["parse_data"]["intent"]["confidence"], at(e["timestamp"])) for e in users]
    assert brief["customer"]["id"] == conversation["customer_id"]
    # Exported again later (with the same events): nothing new.
    again = (await post(client, keys, body))["conversations"][0]
    assert (again["appended"], again["duplicates"]) == (0, 2)


async def test_broker_events_give_turns_both_ways_and_slots_as_facts(
        client: Client, keys: Keys) -> None:
    sender, events = broker_events()
    events[0]["text"] = "I want to fly from Berlin"
    events[0]["parse_data"]["entities"] = [{"entity": "city", "value": "Berlin",
                                            "start": 19, "end": 25}]
    summary = await post(client, keys, events)
    assert summary["conversations"][0]["facts"] == ["departure_airport"]
    assert summary["ignored"] == 3  # action, session_started, pause
    brief = await brief_of(client, keys, f"chat:{sender}")
    assert [(t["role"], t["text"], t["ts"]) for t in brief["turns"]] == [
        ("customer", "I want to fly from Berlin", at(T0)), ("bot", "Hey there!", at(T0 + 1))]
    assert (brief["turns"][0]["intent"], brief["turns"][0]["confidence"]) == ("greet", 0.9)
    assert brief["turns"][0]["entities"] == {"city": "Berlin"}
    fact = brief["facts"]["departure_airport"]
    assert (fact["value"], fact["channel"], fact["verified"]) == ("BER", "chat", False)


async def test_an_email_slot_is_a_claim_that_opens_nobody_elses_context(
        client: Client, keys: Keys) -> None:
    briefs = []
    for _ in range(2):
        sender, events = broker_events()
        events[2] |= {"name": "email", "value": "Ana@Example.com"}
        await post(client, keys, events)
        briefs.append(await brief_of(client, keys, f"chat:{sender}"))
    first, second = briefs
    assert first["customer"]["id"] != second["customer"]["id"]
    for brief in briefs:
        identities = {(i["kind"], i["value"]): i["verified"]
                      for i in brief["customer"]["identities"]}
        assert identities[("email", "ana@example.com")] is False
        assert brief["verifications"] == [] and len(brief["turns"]) == 2


async def test_one_event_at_a_time_keeps_rasas_message_id_and_facts_join_later(
        client: Client, keys: Keys) -> None:
    sender, events = broker_events()
    user, _, slot = events[0], events[1], events[2]
    user["message_id"] = "7f0c9e1b4c2f4d0e"
    await post(client, keys, user)
    summary = await post(client, keys, slot)
    assert summary["conversations"][0]["facts"] == ["departure_airport"]
    brief = await brief_of(client, keys, f"chat:{sender}")
    assert [t["id"] for t in brief["turns"]] == ["7f0c9e1b4c2f4d0e"]
    assert brief["facts"]["departure_airport"]["value"] == "BER"


async def test_a_sender_id_that_reads_like_a_card_number_still_names_the_customer(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    sender, events = broker_events(card_like_session())
    summary = await post(client, keys, events)
    [conversation] = summary["conversations"]
    assert conversation["conversation_id"].startswith("id-")  # stored under a digest
    brief = await brief_of(client, keys, f"chat:{sender}")
    assert brief["customer"]["id"] == conversation["customer_id"]
    assert {t["conversation_id"] for t in brief["turns"]} == {conversation["conversation_id"]}
    assert sender not in everything(redis_sync)
    # Later events of the same sender join the same customer.
    _, more = broker_events(sender)
    more[0] |= {"text": "one more thing", "timestamp": T0 + 100, "message_id": "m-later"}
    again = await post(client, keys, more[:1])
    assert again["conversations"][0]["customer_id"] == conversation["customer_id"]


async def test_a_slot_for_a_conversation_nobody_has_spoken_in_records_nothing(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    _, events = broker_events()
    before = snapshot(redis_sync, not_an_attempt_counter)
    summary = await post(client, keys, events[2])
    assert summary["conversations"][0]["facts"] == []
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


async def test_a_batch_of_two_conversations_is_kept_apart(client: Client, keys: Keys) -> None:
    first, one = broker_events()
    second, two = broker_events()
    two[0]["text"] = "something else"
    summary = await post(client, keys, [one[0], two[0], one[1]])
    assert [(c["conversation_id"], c["appended"]) for c in summary["conversations"]] == [
        (first, 2), (second, 1)]
    assert [t["text"] for t in (await brief_of(client, keys, f"chat:{second}"))["turns"]] == [
        "something else"]


async def test_the_handoff_action_queues_a_handoff_with_the_slots_queue(
        client: Client, keys: Keys) -> None:
    sender, body = tracker()
    body["slots"] |= {"handoff_queue": "billing", "handoff_summary": "Moodbot gave up"}
    body["events"].append({"event": "action", "name": "action_handoff",
                           "timestamp": 1517821727.5, "policy": "RulePolicy"})
    summary = await post(client, keys, body)
    handoff = summary["conversations"][0]["handoff"]
    assert re.fullmatch(r"\d{6}", handoff["continuation_code"])
    brief = await brief_of(client, keys, f"chat:{sender}")
    [queued] = brief["handoffs"]
    assert (queued["id"], queued["queue"], queued["summary"], queued["intent"]) == (
        handoff["id"], "billing", "Moodbot gave up", "mood_great")
    # The tracker exported again, or the event redelivered, names the same hand-off.
    assert (await post(client, keys, body))["conversations"][0]["handoff"]["id"] == handoff["id"]
    assert [h["id"] for h in (await brief_of(client, keys, f"chat:{sender}"))["handoffs"]] == [
        handoff["id"]]


async def test_the_handoff_actions_are_configurable_and_a_slot_can_ask_too(
        make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(rasa_handoff_actions=["action_human"])
    sender, events = broker_events()
    events[3]["name"] = "action_handoff"
    assert (await post(client, keys, events))["conversations"][0]["handoff"] is None
    asked = {"event": "slot", "name": "handoff_request", "value": True, "sender_id": sender,
             "timestamp": T0 + 10}
    assert (await post(client, keys, asked))["conversations"][0]["handoff"]["status"] == \
        "pending"


# -- bad payloads -------------------------------------------------------------------------------

def no_sender() -> Any:
    _, events = broker_events()
    del events[1]["sender_id"]
    return events


def no_event_type() -> Any:
    _, events = broker_events()
    del events[0]["event"]
    return events[0]


def absurd_timestamp() -> Any:
    _, events = broker_events()
    events[1]["timestamp"] = 1e20
    return events


def bad_slot_name() -> Any:
    _, events = broker_events()
    events[2]["name"] = "departure airport"
    return events


def tracker_with_text_as_number() -> Any:
    _, body = tracker()
    body["events"][1]["text"] = 5
    return body


UNMAPPABLE = {
    "an event without sender_id": (no_sender, "1.sender_id"),
    "an event without a type": (no_event_type, None),
    "a timestamp no calendar has": (absurd_timestamp, "1"),
    "a slot name that cannot be a fact": (bad_slot_name, "2.value.departure airport"),
    "a user text that is a number": (tracker_with_text_as_number, None),
}


@pytest.mark.parametrize(("make", "field"), UNMAPPABLE.values(), ids=UNMAPPABLE.keys())
async def test_events_that_cannot_be_mapped_are_422_and_change_nothing(
        make: Any, field: str | None, client: Client, keys: Keys,
        redis_sync: redis.Redis) -> None:
    await post(client, keys, broker_events()[1])
    before = snapshot(redis_sync)
    problem = assert_problem(await call(client, "POST", URL, headers=keys("bot"),
                                        json_body=make()), 422)
    assert problem["errors"]
    if field is not None:
        assert any(e["loc"][0] == field for e in problem["errors"]), problem
    assert_unchanged(before, snapshot(redis_sync))


@pytest.mark.parametrize(("raw", "ctype", "status"), [
    (b"{not json", "application/json", 400),
    (b"event=user", "application/x-www-form-urlencoded", 415),
    (b"42", "application/json", 422)], ids=["garbage", "a form", "a number"])
async def test_a_body_that_is_not_events_is_refused_and_changes_nothing(
        raw: bytes, ctype: str, status: int, client: Client, keys: Keys,
        redis_sync: redis.Redis) -> None:
    await refuses_raw_body(client, redis_sync, URL, keys("bot"), raw, ctype, status)


async def test_only_bot_keys_may_post_and_a_missing_key_is_401(client: Client, keys: Keys,
                                                               redis_sync: redis.Redis) -> None:
    _, body = tracker()
    await only_role_may_post(client, redis_sync, keys, URL, body, "bot")


async def test_another_tenants_events_for_the_same_sender_stay_in_that_tenant(
        client: Client, keys: Keys) -> None:
    sender, body = tracker()
    await post(client, keys, body)
    acme = await brief_of(client, keys, f"chat:{sender}")
    _, events = broker_events(sender)
    summary = await post(client, keys, events, tenant="globex")
    assert summary["conversations"][0]["customer_id"] != acme["customer"]["id"]
    assert await brief_of(client, keys, f"chat:{sender}") == acme
    assert_problem(await call(client, "GET", f"/v1/customers/{acme['customer']['id']}/context",
                              headers=keys("agent", "globex")), 404)
