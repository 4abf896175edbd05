"""Re-asks: the detector on a labelled phrase set (its precision and recall are measured and
written to tests/artifacts/reask-figures.txt), then the service recording them from agent turns
posted by any desk, and the panel's check."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from handoff.api.state import DEPS
from handoff.kernel.settings import Settings
from handoff.services import reask, reask_detector
from handoff.services.reask_detector import Detector, Known
from tests.browser import artifact
from tests.conftest import Keys
from tests.scenario import (
    ACCOUNT,
    CALL,
    assert_problem,
    build_world,
    call,
    ok,
    phone_customer,
    ref,
    turn,
)

Client = TestClient[Any, Any]
DETECTOR = Detector(Settings().reask_topics)
# What the seed scenario's customer has told or proved.
KNOWN: dict[str, list[Known]] = {
    "account": [Known("account", ACCOUNT)], "order_number": [Known("order_number", "A-1001")],
    "email": [Known("email", "ana@example.com")], "phone": [Known("phone", "+15550104477")],
    "dob": [Known("dob", "1990-04-12")], "card_last4": [Known("card_last4", "5678")],
    "address": [Known("address", "12 High Street, Leeds")],
}

# (what the agent types, the topics it re-asks separated by spaces, or None)
LABELLED: list[tuple[str, str | None]] = [
    ("can I have your account number?", "account"),
    ("Could I get your account number please", "account"),
    ("What's your account number?", "account"),
    ("I'll need your account number to continue.", "account"),
    ("Please provide your account number.", "account"),
    ("And your account number?", "account"),
    ("Can you read me your customer number?", "account"),
    ("What is the order number?", "order_number"),
    ("Could you give me the order number, please?", "order_number"),
    ("Do you have your order reference handy?", "order_number"),
    ("Which order number is this about?", "order_number"),
    ("Can you confirm your date of birth?", "date_of_birth"),
    ("For security, what is your date of birth?", "date_of_birth"),
    ("May I take your DOB?", "date_of_birth"),
    ("Could you tell me when you were born?", "date_of_birth"),
    ("What email address should we use?", "email"),
    ("Can I grab your email?", "email"),
    ("Please spell your e-mail address for me.", "email"),
    ("Your email, please?", "email"),
    ("What's the best phone number to reach you?", "phone"),
    ("Could you give me a callback number?", "phone"),
    ("Can I have your mobile number?", "phone"),
    ("Can you read me the long number on your card?", "card"),
    ("I need your card number to check the charge.", "card"),
    ("Could you confirm your card details?", "card"),
    ("What's your postcode?", "address"),
    ("Can you confirm your address?", "address"),
    ("Sorry, what is your billing address again?", "address"),
    ("Thanks for waiting. Can I have your account number and date of birth?",
     "account date_of_birth"),
    ("Let me confirm your account ending 5678", None),
    ("Let me confirm your account ending 2345, one moment.", None),
    ("I can see your account number here, thanks.", None),
    ("I have your order number, A-1001, in front of me.", None),
    ("Is your email still ana@example.com?", None),
    ("Your card ending in 5678 was charged twice.", None),
    ("I've got your date of birth already, no need to repeat it.", None),
    ("Thanks for your patience while I look at the account.", None),
    ("I'm sorry about the double charge on order A-1001.", None),
    ("Did you receive the email we sent yesterday?", None),
    ("The refund goes back to the card you paid with.", None),
    ("I'll send the confirmation to your email address on file.", None),
    ("Let me check the order status for you.", None),
    ("We'll post the replacement to the address we have.", None),
    ("You don't need to give me your account number, you're verified.", None),
    ("Can I help with anything else today?", None),
    ("Is the phone line clear now?", None),
    ("What happened when you tried to pay?", None),
    ("Your account is verified, so we can go straight to the refund.", None),
]


def measure() -> tuple[float, float, list[str]]:
    """Precision and recall over LABELLED, and what went wrong."""
    true_pos = false_pos = false_neg = 0
    wrong = []
    for text, label in LABELLED:
        found = {h.topic for h in DETECTOR.detect(text, KNOWN)}
        for topic in (label or "").split():
            if topic in found:
                true_pos += 1
            else:
                false_neg += 1
                wrong.append(f"missed {topic}: {text}")
        extra = found - set((label or "").split())
        false_pos += len(extra)
        wrong += [f"false alarm {t}: {text}" for t in extra]
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    return precision, recall, wrong


def test_the_detector_is_precise_and_finds_nearly_every_reask_in_the_phrase_set() -> None:
    precision, recall, wrong = measure()
    positives = sum(len(t.split()) for _, t in LABELLED if t)
    negatives = sum(1 for _, t in LABELLED if not t)
    figures = (f"re-ask detector on {len(LABELLED)} phrases ({positives} re-asks, "
               f"{negatives} phrases asking nothing known): precision {precision:.3f}, "
               f"recall {recall:.3f}\n" + "".join(f"  {w}\n" for w in wrong))
    artifact("reask-figures.txt").write_text(figures)
    print(figures)
    assert precision >= 0.95, figures
    assert recall >= 0.9, figures


@pytest.mark.parametrize("text", [t for t, topic in LABELLED if topic][:8])
def test_nothing_is_a_reask_when_the_context_does_not_have_it_yet(text: str) -> None:
    assert DETECTOR.detect(text, {}) == []
    assert DETECTOR.detect(text, {"email": [Known("email", "ana@example.com")]}) == []


def test_confirming_the_account_by_its_last_digits_is_no_alarm() -> None:
    assert DETECTOR.detect("let me confirm your account ending 5678", KNOWN) == []


def test_a_reask_names_the_phrase_and_the_known_value() -> None:
    (hit,) = DETECTOR.detect("Could I get your account number please", KNOWN)
    assert (hit.topic, hit.phrase) == ("account", "account number")
    assert hit.known == (Known("account", ACCOUNT),)


def test_only_the_start_of_a_long_turn_is_checked() -> None:
    # Every agent turn is checked as it is stored: the work per turn is bounded by its start.
    filler = "I am so sorry about all of this. " * (reask_detector.TURN_CHARS // 33 + 1)
    assert DETECTOR.detect("Can I have your account number? " + filler, KNOWN)
    assert DETECTOR.detect(filler + "Can I have your account number?", KNOWN) == []


def test_phrases_inside_longer_ones_are_dropped_as_a_pairwise_comparison_would() -> None:
    # The sweep in `_matches` must agree with the definition: inside a longer phrase's span.
    from tests.reask_dev import DEV

    for text, _ in DEV:
        for sentence in reask_detector.SENTENCE.findall(DETECTOR.normalise(text)):
            spans = [(n, p, m.start(), m.end()) for n, p, rx in DETECTOR._phrases_for(sentence)
                     for m in rx.finditer(sentence)]
            expected = sorted((s for s in spans if not any(
                o[2] <= s[2] and s[3] <= o[3] and o[3] - o[2] > s[3] - s[2] for o in spans)),
                key=lambda s: (s[2], s[2] - s[3]))
            assert DETECTOR._matches(sentence) == expected, sentence


def test_the_phrase_map_is_configurable() -> None:
    settings = Settings(reask_topics={"policy": {"keys": ["policy_number"],
                                                 "phrases": ["policy number", "policy no"]}})
    detector = Detector(settings.reask_topics)
    known = {"policy_number": [Known("policy_number", "P-77")]}
    assert [h.topic for h in detector.detect("What's your policy no?", known)] == ["policy"]
    assert detector.detect("Can I have your account number?", KNOWN) == []


# -- the service: every desk's agent turns are checked -------------------------------------------

async def agent_says(client: Client, keys: Keys, turn_id: str, text: str, **headers: str) -> None:
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", {**keys("agent"), **headers},
             {"turns": [turn(turn_id, text, "agent")]})


async def test_an_agent_asking_for_the_verified_account_is_flagged_announced_and_counted(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    exported = REGISTRY.get_sample_value("handoff_reasks_total",
                                         {"tenant": "acme", "fact": "account"}) or 0.0
    async with client.get(f"/v1/customers/{world.customer_id}/events",
                          headers=keys("agent")) as stream:
        await agent_says(client, keys, "a1", "Hello! Can I have your account number?")
        seen = b""
        while b"event: reask" not in seen:
            seen += await stream.content.readany()
    assert b'"term":"account"' in seen and b'"turn_id":"a1"' in seen
    brief = await ok(client, "GET", f"/v1/customers/{world.customer_id}/context",
                     keys("agent"))
    (flag,) = [f for f in brief["flags"] if f["kind"] == "reask"]
    assert (flag["term"], flag["phrase"], flag["turn_id"], flag["conversation_id"]) == (
        "account", "account number", "a1", CALL)
    assert await reask.counts(client.app[DEPS], "acme") == {"account": 1}
    assert await reask.counts(client.app[DEPS], "globex") == {}
    assert REGISTRY.get_sample_value("handoff_reasks_total",
                                     {"tenant": "acme", "fact": "account"}) == exported + 1


async def test_a_retried_post_of_the_same_agent_turn_counts_once(
        client: Client, keys: Keys) -> None:
    await build_world(client, keys)
    for _ in range(3):
        await agent_says(client, keys, "a1", "What's your order number?")
    assert await reask.counts(client.app[DEPS], "acme") == {"order_number": 1}


async def test_agent_turns_that_ask_nothing_known_or_confirm_are_not_flagged(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    await agent_says(client, keys, "a1", "Can you confirm your date of birth?")  # not known
    await agent_says(client, keys, "a2", "Let me confirm your account ending 2345")
    await agent_says(client, keys, "a3", "I'm sorry about the double charge.")
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", keys("ivr"), {
        "customer": phone_customer(), "turns": [turn("c5", "What's your account number?")]})
    brief = await ok(client, "GET", f"/v1/customers/{world.customer_id}/context",
                     keys("agent"))
    assert [f for f in brief["flags"] if f["kind"] == "reask"] == []
    assert await reask.counts(client.app[DEPS], "acme") == {}


async def test_the_panels_check_names_what_is_known_without_recording_anything(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    result = await ok(client, "POST", f"/v1/customers/{ref('account:' + ACCOUNT)}/reask-check",
                      keys("agent"), {"text": "Could you tell me your email address?"})
    assert result == {"reasks": [{"topic": "email", "phrase": "email address",
                                  "known": ["email"]}]}
    quiet = await ok(client, "POST", f"/v1/customers/{world.customer_id}/reask-check",
                     keys("agent"), {"text": "How can I help?"})
    assert quiet == {"reasks": []}
    assert await reask.counts(client.app[DEPS], "acme") == {}


async def test_another_tenant_cannot_check_against_acmes_customer(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    answer = await call(client, "POST", f"/v1/customers/{world.customer_id}/reask-check",
                        headers=keys("agent", "globex"), json_body={"text": "How can I help?"})
    assert_problem(answer, 404)
