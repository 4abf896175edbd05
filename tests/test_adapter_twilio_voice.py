"""Twilio Voice adapter: incoming calls and <Gather> callbacks, signed as Twilio signs them.

Vendor documentation the payloads and rules come from:
- voice webhook parameters: https://www.twilio.com/docs/usage/webhooks/voice-webhooks
- <Gather> and its action callback (Digits, SpeechResult, Confidence):
  https://www.twilio.com/docs/voice/twiml/gather
- X-Twilio-Signature: https://www.twilio.com/docs/usage/webhooks/webhooks-security
Bodies are the samples in tests/vendor_samples (see SOURCES.md) with their values varied. Twilio
publishes no raw body with `SpeechResult`: the speech test adds `SpeechResult`/`Confidence` to the
published DTMF body itself, so that data is synthetic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from adapters.twilio_voice import classify, signature, url_variants
from schemas.vendors.twilio import GatherResult
from tests.adapter_checks import stored_id
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, not_an_attempt_counter, snapshot
from tests.scenario import Answer, assert_problem, brief_of, call, ok, ref

SAMPLES = Path(__file__).parent / "vendor_samples"
TOKEN = "f3c1a9d2b7e84c05a6d3e2b1c0f9a8e7"
VOICE = "/v1/adapters/twilio/voice"
GATHER = "/v1/adapters/twilio/gather"
FORM = "application/x-www-form-urlencoded"
Pairs = list[tuple[str, str]]
VECTORS = json.loads((SAMPLES / "twilio-signature-example.json").read_text())["vectors"]


def sample(name: str) -> Pairs:
    """A `.form` sample as its pairs (values are stored decoded, one `name=value` a line)."""
    lines = (SAMPLES / name).read_text().splitlines()
    return [(k, v) for k, _, v in (line.partition("=") for line in lines if line)]


def vary(pairs: Pairs, **values: str) -> Pairs:
    """The pairs with some values replaced (and names not in the sample appended)."""
    out = [(k, values.get(k, v)) for k, v in pairs]
    return out + [(k, v) for k, v in values.items() if k not in dict(pairs)]


def new_call() -> tuple[str, str]:
    """A fresh CallSid and caller number."""
    return (f"CA{random.getrandbits(128):032x}",
            f"+1415{random.randint(200, 999)}{random.randint(1000, 9999)}")


def basic(keys: Keys, role: str = "ivr", tenant: str = "acme") -> dict[str, str]:
    """The key as Twilio sends it from a webhook URL: the password of Basic credentials."""
    secret = keys(role, tenant)["Authorization"].removeprefix("Bearer ")
    return {"Authorization": "Basic " + base64.b64encode(f"twilio:{secret}".encode()).decode()}


async def post(client: TestClient[Any, Any], path: str, pairs: Pairs, auth: dict[str, str], *,
               token: str = TOKEN, signed_url: str | None = None,
               headers: dict[str, str] | None = None) -> Answer:
    url = signed_url or str(client.make_url(path))
    sent = {**auth, "Content-Type": f"{FORM}; charset=UTF-8",
            "X-Twilio-Signature": signature(token, url, pairs), **(headers or {})}
    return await call(client, "POST", path, headers=sent, data=urlencode(pairs))


def twiml(answer: Answer) -> ElementTree.Element:
    assert answer.status == 200, answer.raw[:300]
    assert answer.content_type == "application/xml"
    root = ElementTree.fromstring(answer.raw)
    assert root.tag == "Response"
    return root


@pytest.fixture
async def twilio(make_client: AppFactory) -> TestClient[Any, Any]:
    return await make_client(twilio_auth_tokens={"acme": SecretStr(TOKEN)},
                             twilio_prompt="Enter your code now.",
                             twilio_join="redirect:https://ivr.example.com/agents")


# -- the signature, against Twilio's own published examples ------------------------------------

@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"][:70] for v in VECTORS])
def test_every_published_signature_example_is_reproduced(vector: dict[str, Any]) -> None:
    default = VECTORS[0]["params"]
    if "params" in vector:
        pairs: Pairs = list(vector["params"].items())
    elif "form_body" in vector:
        pairs = parse_qsl(vector["form_body"])
    elif "params_file" in vector:
        pairs = sample(vector["params_file"])
    elif "body" in vector:  # a JSON body: the URL carries its hash and is signed alone
        pairs = []
        digest = hashlib.sha256(vector["body"].encode()).hexdigest()
        assert digest == vector["body_sha256_hex"] and digest in vector["url"]
    else:
        pairs = list(default.items())
    signed = [signature(vector["auth_token"], u, pairs) for u in url_variants(vector["url"])]
    assert vector["expected_signature"] in signed
    if "signed_url" in vector:
        assert signature(vector["auth_token"], vector["signed_url"], pairs) == \
            vector["expected_signature"]
    if "string_to_sign" in vector:
        assert vector["string_to_sign"] == vector["url"] + "".join(
            k + v for k, v in sorted(pairs))


def test_the_signed_url_drops_credentials_and_is_tried_with_and_without_its_port() -> None:
    assert url_variants("https://twilio:hk_secret@example.com/v1/x?a=1") == [
        "https://example.com/v1/x?a=1", "https://example.com:443/v1/x?a=1"]
    assert url_variants("http://example.com:8080/p") == [
        "http://example.com/p", "http://example.com:8080/p"]


@pytest.mark.parametrize(("digits", "speech", "expected"), [
    ("482913", "", ("code", "482913")),
    ("*482913", "", ("account", "482913")),
    ("88812345", "", ("account", "88812345")),
    ("", "4 8 2, 9 1 3.", ("code", "482913")),
    ("", "I want to talk to someone", ("none", "")),
    ("", "", ("none", "")),
])
def test_what_the_caller_entered_is_told_apart(digits: str, speech: str,
                                               expected: tuple[str, str]) -> None:
    entry = GatherResult(CallSid="CA1", Digits=digits, SpeechResult=speech)
    assert classify(entry, 6) == expected


# -- calls through the real server --------------------------------------------------------------

async def test_an_incoming_call_is_recorded_on_the_callers_number_and_asked_for_a_code(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    sid, phone = new_call()
    pairs = vary(sample("twilio-voice-incoming.form"), CallSid=sid, From=phone, Caller=phone,
                 To="+15005550006")

    root = twiml(await post(twilio, VOICE, pairs, basic(keys)))

    gather = root.find("Gather")
    assert gather is not None and gather.get("action") == "gather?attempt=1"
    assert gather.get("input") == "dtmf speech" and gather.findtext("Say") == "Enter your code now."
    brief = await brief_of(twilio, keys, f"phone:{phone}")
    assert [(j["channel"], j["conversation_id"], j["source"]) for j in brief["journey"]] == [
        ("voice", stored_id(twilio, sid), "twilio")]
    (start,) = brief["turns"]
    assert start["role"] == "system" and start["channel"] == "voice"
    assert "+15005550006" in start["text"] and "ringing" in start["text"]
    assert {"kind": "phone", "value": phone} in [
        {"kind": i["kind"], "value": i["value"]} for i in brief["customer"]["identities"]
        if i["linked"]]


async def test_a_retried_webhook_appends_nothing_twice(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    sid, phone = new_call()
    pairs = vary(sample("twilio-voice-incoming-signed.form"), CallSid=sid, From=phone)
    retry = {"I-Twilio-Idempotency-Token": "5f0c1e2d-aaaa-bbbb-cccc-0123456789ab"}
    for _ in range(2):
        twiml(await post(twilio, VOICE, pairs, basic(keys), headers=retry))
    for _ in range(2):  # and without the token the call and step name the turn
        twiml(await post(twilio, GATHER + "?attempt=1",
                         vary(sample("twilio-gather-digits.form"), CallSid=sid, From=phone,
                              Digits="*5550001"), basic(keys)))

    brief = await brief_of(twilio, keys, f"phone:{phone}")
    assert [t["role"] for t in brief["turns"]] == ["system", "customer"]
    assert len(brief["handoffs"]) == 1


async def test_a_code_typed_on_the_phone_joins_the_call_to_the_chat_that_handed_it_out(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    visitor, sid, phone = f"visitor-{random.getrandbits(32)}", *new_call()
    chat = {"identities": [{"kind": "chat", "value": visitor}]}
    await ok(twilio, "POST", "/v1/conversations/web-1/turns", keys("bot"), {
        "customer": chat, "channel": "chat", "source": "acme-bot",
        "turns": [{"id": "t1", "role": "customer", "text": "My parcel never arrived",
                   "ts": "2026-11-23T10:02:00Z"}]})
    handoff = await ok(twilio, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": "web-1", "reason": "customer_request",
        "queue": "deliveries", "summary": "Parcel missing", "continuation": True}, status=201)
    await post(twilio, VOICE, vary(sample("twilio-voice-incoming.form"), CallSid=sid, From=phone),
               basic(keys))

    root = twiml(await post(twilio, GATHER + "?attempt=1", vary(
        sample("twilio-gather-digits.form"), CallSid=sid, From=phone, Caller=phone,
        Digits=handoff["continuation_code"]), basic(keys)))

    assert root.findtext("Say")
    assert root.findtext("Redirect") == (f"https://ivr.example.com/agents?handoff_id="
                                         f"{handoff['id']}&customer_id={handoff['customer_id']}")
    brief = await brief_of(twilio, keys, f"chat:{visitor}")
    assert [(j["channel"], j["conversation_id"]) for j in brief["journey"]] == [
        ("chat", "web-1"), ("voice", stored_id(twilio, sid))]
    assert [(t["channel"], t["role"], t["text"]) for t in brief["turns"]][-1] == (
        "voice", "customer", handoff["continuation_code"])
    assert [(h["id"], h["queue"], h["summary"]) for h in brief["handoffs"]] == [
        (handoff["id"], "deliveries", "Parcel missing")]
    assert brief == await brief_of(twilio, keys, f"phone:{phone}")


async def test_a_spoken_code_is_redeemed_too_and_keeps_its_confidence(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    chat = {"identities": [{"kind": "chat", "value": "visitor-speech"}]}
    handoff = await ok(twilio, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": "web-2", "channel": "chat",
        "reason": "bot_failure", "continuation": True}, status=201)
    sid, phone = new_call()
    spoken = " ".join(handoff["continuation_code"]) + "."
    # Synthetic: Twilio publishes no raw body with SpeechResult (see the module docstring).
    pairs = vary(sample("twilio-gather-digits.form"), CallSid=sid, From=phone, Digits="",
                 SpeechResult=spoken, Confidence="0.87")

    root = twiml(await post(twilio, GATHER + "?attempt=1", pairs, basic(keys)))

    assert root.find("Redirect") is not None
    brief = await brief_of(twilio, keys, "chat:visitor-speech")
    last = brief["turns"][-1]
    assert (last["text"], last["confidence"], last["intent"]) == (
        spoken, 0.87, "continuation_code")


async def test_a_wrong_code_asks_again_and_the_third_puts_the_caller_through_without_it(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    sid, phone = new_call()
    answers = []
    for attempt in (1, 2, 3):
        pairs = vary(sample("twilio-gather-digits.form"), CallSid=sid, From=phone,
                     Digits=f"{attempt}00000")
        answers.append(twiml(await post(twilio, f"{GATHER}?attempt={attempt}", pairs,
                                        basic(keys))))

    assert [a.find("Gather").get("action") for a in answers[:2]] == [  # type: ignore[union-attr]
        "gather?attempt=2", "gather?attempt=3"]
    assert "not recognised" in (answers[0].findtext("Say") or "")
    assert answers[2].find("Gather") is None and answers[2].find("Redirect") is not None
    queue = await ok(twilio, "GET", "/v1/handoffs?queue=general", keys("agent"))
    (item,) = queue["items"]
    assert item["conversation_id"] == stored_id(twilio, sid) and item["channel"] == "voice"


async def test_silence_asks_again(twilio: TestClient[Any, Any], keys: Keys) -> None:
    sid, phone = new_call()
    pairs = vary(sample("twilio-gather-digits.form"), CallSid=sid, From=phone, Digits="")
    root = twiml(await post(twilio, GATHER, pairs, basic(keys)))
    assert root.find("Gather").get("action") == "gather?attempt=2"  # type: ignore[union-attr]


async def test_an_account_number_is_a_claim_that_opens_no_one_elses_context(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    # The real holder of account 88812345 proved it on another call.
    await ok(twilio, "POST", "/v1/verifications", keys("ivr"), {
        "customer": {"identities": [{"kind": "phone", "value": "+15550104477"}]},
        "conversation_id": "CAholder", "channel": "voice",
        "identity": {"kind": "account", "value": "88812345"}, "method": "pin"})
    sid, phone = new_call()
    await post(twilio, VOICE, vary(sample("twilio-voice-incoming.form"), CallSid=sid, From=phone),
               basic(keys))

    root = twiml(await post(twilio, GATHER + "?attempt=1", vary(
        sample("twilio-gather-digits.form"), CallSid=sid, From=phone, Digits="*88812345"),
        basic(keys)))

    assert root.find("Redirect") is not None
    caller = await brief_of(twilio, keys, f"phone:{phone}")
    holder = await brief_of(twilio, keys, "account:88812345")
    assert caller["customer"]["id"] != holder["customer"]["id"]
    claim = next(i for i in caller["customer"]["identities"] if i["kind"] == "account")
    assert (claim["value"], claim["verified"], claim["linked"]) == ("88812345", False, False)
    assert "account" in caller["do_not_ask"] and caller["verifications"] == []
    assert [h["summary"] for h in caller["handoffs"]] == [
        "Phone call put through without a continuation code"]
    assert all(t["conversation_id"] != "CAholder" for t in caller["turns"])


async def test_the_public_url_is_what_is_signed_behind_a_proxy(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(twilio_auth_tokens={"acme": SecretStr(TOKEN)},
                            public_url="https://twilio:ignored@handoff.example.com/cc")
    sid, phone = new_call()
    pairs = vary(sample("twilio-voice-incoming.form"), CallSid=sid, From=phone)

    proxied = await post(app, VOICE, pairs, basic(keys),
                         signed_url=f"https://handoff.example.com/cc{VOICE}")
    direct = await post(app, VOICE, pairs, basic(keys))

    twiml(proxied)
    assert_problem(direct, 403)


# -- what is refused, and changes nothing ------------------------------------------------------

async def test_a_tampered_parameter_url_or_signature_is_refused_and_changes_nothing(
        twilio: TestClient[Any, Any], keys: Keys, redis_sync: Any) -> None:
    sid, phone = new_call()
    pairs = vary(sample("twilio-voice-incoming.form"), CallSid=sid, From=phone)
    before = snapshot(redis_sync, not_an_attempt_counter)
    url = str(twilio.make_url(VOICE))
    signed = signature(TOKEN, url, pairs)
    tampered = vary(pairs, From="+14155550199")
    auth = {**basic(keys), "Content-Type": FORM}

    answers = [
        await call(twilio, "POST", VOICE, data=urlencode(tampered),
                   headers={**auth, "X-Twilio-Signature": signed}),
        await post(twilio, VOICE, pairs, basic(keys), signed_url=url + "?attempt=2"),
        await post(twilio, VOICE, pairs, basic(keys), token="another-accounts-token"),
        await call(twilio, "POST", VOICE, data=urlencode(pairs), headers=auth),
    ]

    for answer in answers:
        assert "signature" in assert_problem(answer, 403)["detail"].lower()
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


async def test_a_tenant_without_a_twilio_token_cannot_use_the_adapter(
        twilio: TestClient[Any, Any], keys: Keys, redis_sync: Any) -> None:
    before = snapshot(redis_sync, not_an_attempt_counter)
    answer = await post(twilio, VOICE, sample("twilio-voice-incoming.form"),
                        basic(keys, tenant="globex"))
    assert "no Twilio auth token" in assert_problem(answer, 403)["detail"]
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


async def test_twilio_is_challenged_for_its_url_credentials_and_other_roles_are_refused(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    pairs = sample("twilio-voice-incoming.form")
    for _ in range(25):  # Twilio asks without credentials on every call: never a lockout
        challenged = await post(twilio, VOICE, pairs, {})
        assert_problem(challenged, 401)
        assert challenged.headers["WWW-Authenticate"] == 'Basic realm="handoff"'
    assert_problem(await post(twilio, VOICE, pairs, basic(keys, "bot")), 403)
    assert_problem(await post(twilio, GATHER, pairs, basic(keys, "agent")), 403)
    twiml(await post(twilio, VOICE, pairs, basic(keys)))


@pytest.mark.parametrize(("body", "content_type", "status"), [
    ("CallSid=&From=%2B14155550100", FORM, 422),
    ("From=%2B14155550100&To=%2B15005550006", FORM, 422),
    ("CallSid=not-a-call-sid", FORM, 422),
    ("CallSid=CA1&Digits=12ab", FORM, 422),
    ("CallSid=CA1&Confidence=very", FORM, 422),
    ('{"CallSid": "CA1"}', "application/json", 415),
    ("CallSid=CA1&From=%FF%FE\xe9", FORM, 400),
])
async def test_a_request_twilio_could_not_have_sent_gets_a_4xx_and_changes_nothing(
        twilio: TestClient[Any, Any], keys: Keys, redis_sync: Any, body: str,
        content_type: str, status: int) -> None:
    path = GATHER if "Digits" in body or "Confidence" in body else VOICE
    signed = content_type == FORM and status != 400
    pairs = parse_qsl(body, keep_blank_values=True) if signed else []
    before = snapshot(redis_sync, not_an_attempt_counter)
    answer = await call(twilio, "POST", path, data=body.encode(), headers={
        **basic(keys), "Content-Type": content_type,
        "X-Twilio-Signature": signature(TOKEN, str(twilio.make_url(path)), pairs)})
    assert_problem(answer, status)
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


async def test_another_tenants_caller_is_a_different_customer(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(twilio_auth_tokens={"acme": SecretStr(TOKEN),
                                                "globex": SecretStr("globex-token")})
    sid, phone = new_call()
    pairs = vary(sample("twilio-voice-incoming.form"), CallSid=sid, From=phone)
    await post(app, VOICE, pairs, basic(keys))
    await post(app, VOICE, pairs, basic(keys, tenant="globex"), token="globex-token")

    acme = await brief_of(app, keys, f"phone:{phone}")
    globex = await brief_of(app, keys, f"phone:{phone}", tenant="globex")
    assert acme["customer"]["id"] != globex["customer"]["id"]
    assert_problem(await call(app, "GET", f"/v1/customers/{ref(acme['customer']['id'])}/context",
                              headers=keys("agent", "globex")), 404)


async def test_a_call_sid_that_reads_like_a_card_number_is_still_recorded(
        twilio: TestClient[Any, Any], keys: Keys) -> None:
    _, phone = new_call()
    sid = "CA4111111111111111abcdefabcdefabcd"  # a Luhn-valid run inside random hex
    twiml(await post(twilio, VOICE, vary(sample("twilio-voice-incoming.form"), CallSid=sid,
                                         From=phone), basic(keys)))
    brief = await brief_of(twilio, keys, f"phone:{phone}")
    (journey,) = brief["journey"]
    assert journey["channel"] == "voice" and "4111" not in journey["conversation_id"]


async def test_the_openapi_document_lists_the_twilio_routes_for_ivr_keys(
        twilio: TestClient[Any, Any]) -> None:
    paths = (await ok(twilio, "GET", "/openapi.json", {}))["paths"]
    for path in (VOICE, GATHER):
        assert paths[path]["post"]["description"] == "Roles: ivr"


@pytest.mark.parametrize("attempt", ["²", "٣", "-1", "9999", ""])
async def test_an_odd_attempt_number_in_a_signed_callback_url_counts_as_the_first(
        twilio: TestClient[Any, Any], keys: Keys, attempt: str) -> None:
    sid, phone = new_call()
    pairs = vary(sample("twilio-gather-digits.form"), CallSid=sid, From=phone, Digits="")
    root = twiml(await post(twilio, GATHER + "?" + urlencode({"attempt": attempt}), pairs,
                            basic(keys)))
    # Silence on a first attempt asks again, as the second.
    gather = root.find("Gather")
    assert gather is not None and gather.get("action") == "gather?attempt=2"
