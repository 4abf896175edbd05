"""Card numbers are masked however they are written: dots, slashes, runs of spaces, no-break and
zero-width characters, other scripts' digits, glued to letters. Each spelling is sent through
every write route and every vendor adapter; then every Redis key, the append-only file on disk
and every log line are searched for it, in every spelling: no card number is found in full.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from urllib.parse import quote

import pytest
import redis
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from handoff.kernel import logs, masking
from handoff.kernel.masking import mask_text
from handoff.kernel.settings import Settings
from handoff.services.privacy import Privacy
from tests import test_adapter_dialogflow_cx as dialogflow
from tests import test_adapter_lex_v2 as lex
from tests import test_adapter_rasa as rasa
from tests import test_adapter_twilio_voice as twilio
from tests.card_checks import (
    SPELLINGS,
    AppendOnlyFile,
    Spelling,
    aof_directories,
    digit_view,
    grouped,
    leaked,
    masked,
    random_pan,
    store_text,
)
from tests.conftest import AppFactory, Keys, RedisServer
from tests.scenario import ok
from tests.test_adapter_amazon_connect import event as connect_event
from tests.test_adapter_amazon_connect import flow as connect_flow

Client = TestClient[Any, Any]
Json = dict[str, Any]
NAMES = [s.name for s in SPELLINGS]
# What stays of the words glued to a card number once it is masked.
GLUED = {"glued to a prefix": ("ref-", ""), "glued on both sides": ("card:", "x")}


def fresh_pan() -> str:
    return random_pan(random.choice([13, 15, 16, 16, 16, 19]))


# -- the masker --------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS, ids=NAMES)
def test_a_card_number_is_masked_to_its_last_four_however_it_is_spelled(
        spelling: Spelling) -> None:
    pan = fresh_pan()
    # Digits around it that are no card number stay as they are.
    others = ("Order A-1001 of 2026-11-23T10:02:00Z, tracking 41111111111111111111, was "
              "4111.1111.1111.1112. Call me on +1 (555) 010-4477 at 12:30, 14:45 or 16:00.")
    said = f"{others} My card is {spelling.write(pan)}, thanks"

    hidden = mask_text(said)

    assert pan not in digit_view(hidden)
    before, after = GLUED.get(spelling.name, ("", ""))
    if spelling.name == "followed by its security code":
        code = said.removesuffix(", thanks").rsplit(" ", 1)[1]
        # The code stays, unless it and the card's tail also read as a card number.
        assert hidden in (f"{others} My card is {masked(pan)} {code}, thanks",
                          f"{others} My card is **** **** **** {(pan + code)[-4:]}, thanks")
    else:
        assert hidden == f"{others} My card is {before}{masked(pan)}{after}, thanks"


def test_several_card_numbers_in_one_run_of_groups_are_each_masked() -> None:
    first, second = random_pan(16), random_pan(16)
    said = f"{grouped(first, '.')}  {grouped(second, chr(0x200b))}"
    hidden = mask_text(said)
    assert first not in digit_view(hidden) and second not in digit_view(hidden)
    assert hidden.count("**** **** **** ") in (1, 2)  # two, or one when they overlap as one


def adversarial(size: int, pans: list[str]) -> str:
    """`size` characters of digit groups and separators of every kind, with card numbers in
    every spelling between them."""
    separators = [" ", "  ", "-", ".", "/", "\u00a0", "\u202f", "\u200b", "\u200d", "\u2060",
                  "\ufeff", "\n"]
    parts: list[str] = []
    length = 0
    while length < size:
        if pans and random.random() < 0.02:
            part = random.choice(SPELLINGS).write(pans[len(parts) % len(pans)])
        else:
            part = "".join(random.choices("0123456789", k=random.randint(1, 5)))
        parts += (part, random.choice(separators))
        length += len(part) + len(parts[-1])
    return "".join(parts)[:size]


def test_a_64_kb_turn_of_digits_and_separators_is_masked_completely() -> None:
    pans = [fresh_pan() for _ in range(40)]
    text = adversarial(64 * 1024, pans)

    hidden = mask_text(text)

    assert not leaked(pans, hidden)
    assert "**** **** **** " in hidden


def python_lines_run(text: str) -> int:
    """How many lines of the masker's Python run to mask `text` (deterministic, unlike time)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename == masking.__file__:
            if event == "line":
                count += 1
            return trace
        return None

    sys.settrace(trace)
    try:
        mask_text(text)
    finally:
        sys.settrace(None)
    return count


def test_the_maskers_work_grows_linearly_with_the_text() -> None:
    # Single digits joined by spaces are the worst case: every group ends seven candidates.
    quarter = " ".join(random.choices("0123456789", k=8 * 1024))
    whole = quarter * 4

    small, large = python_lines_run(quarter), python_lines_run(whole)

    assert small > 8 * 1024, "every group is looked at"
    assert large < 4.5 * small, f"{small} lines for 16 KB, {large} for 64 KB: not linear"


@pytest.mark.parametrize("spelling", SPELLINGS, ids=NAMES)
def test_an_id_holding_a_card_number_is_kept_as_its_last_four_and_a_keyed_digest(
        spelling: Spelling) -> None:
    pan = fresh_pan()
    settings = Settings(redis_url="redis://unused")
    first = Privacy(settings, digest=lambda v: f"{len(v):032x}"[::-1])
    other_key = Privacy(settings, digest=lambda v: f"{len(v) + 1:032x}"[::-1])

    spelled = spelling.write(pan)

    kept = first.safe_id(spelled)

    last_four = re.findall(r"\*{4} \*{4} \*{4} (\d{4})", mask_text(spelled))[-1]
    assert kept.startswith(f"id-{last_four}-") and pan not in digit_view(kept)
    assert first.safe_id(spelled) == kept, "the same id every time"
    assert first.safe_id(kept) == kept, "posting it back names the same thing"
    assert other_key.safe_id(spelled) != kept, "the digest is keyed"


# -- through the whole service -----------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record at DEBUG, from before the app starts until the test ends, with
    aiohttp's loggers masked as `handoff serve` masks them (its access log quotes raw URLs)."""
    caplog.set_level(logging.DEBUG)
    added = []
    for name in logs.AIOHTTP_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, logs.MaskCardNumbers) for f in log.filters):
            added.append(log)
        logs.logger(name)
    yield caplog
    for log in added:
        log.filters = [f for f in log.filters if not isinstance(f, logs.MaskCardNumbers)]


@pytest.fixture
async def app(make_client: AppFactory) -> Client:
    """The service with Twilio configured (its signature is checked like every other)."""
    return await make_client(twilio_auth_tokens={"acme": SecretStr(twilio.TOKEN)})


def at(minutes: int) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=60 - minutes)
    return moment.isoformat().replace("+00:00", "Z")


def path_id(value: str) -> str:
    return quote(value, safe="")


async def through_the_api(app: Client, keys: Keys, spelled: str, slug: str | None) -> None:
    """Every write route, with the card number in every field a caller fills: free text and
    ids alike (ids are kept digested)."""
    said = f"my card is {spelled}"
    visitor = f"visitor {spelled}"
    chat = {"identities": [{"kind": "chat", "value": visitor},
                           {"kind": "x-card", "value": spelled}]}
    caller = {"identities": [{"kind": "phone",
                              "value": f"+1415{random.randint(2000000, 9999999)}"},
                             {"kind": "account", "value": spelled}]}
    conversation = f"web {spelled}"
    written = await ok(app, "POST", f"/v1/conversations/{path_id(conversation)}/turns",
                       keys("bot"), {
                           "customer": chat, "channel": "chat", "source": spelled,
                           "turns": [{"id": spelled, "role": "customer", "text": said,
                                      "ts": at(1), "intent": f"card {spelled}",
                                      "entities": {"card": spelled, "note": said}},
                                     {"id": f"{spelled}-2", "role": "bot", "ts": at(2),
                                      "text": f"You said {spelled}?"}],
                           "facts": {"card": spelled, "card_number": {"value": said}}})
    stored = written["conversation_id"]
    await ok(app, "PUT", f"/v1/customers/{path_id(f'chat:{visitor}')}/facts", keys("bot"), {
        "facts": {"payment": said}, "conversation_id": conversation, "source": spelled})
    handoff = await ok(app, "POST", "/v1/handoffs",
                       {**keys("bot"), "Idempotency-Key": spelled}, {
                           "customer": chat, "conversation_id": conversation,
                           "channel": "chat", "source": spelled, "reason": "customer_request",
                           "queue": slug or "billing", "intent": said, "summary": said,
                           "continuation": True}, status=201)
    call = f"CA {spelled}"
    await ok(app, "POST", f"/v1/continuations/{handoff['continuation_code']}/redeem",
             keys("ivr"), {"customer": caller, "conversation_id": call, "channel": "voice",
                           "source": spelled})
    await ok(app, "POST", "/v1/verifications", keys("ivr"), {
        "customer": caller, "conversation_id": call, "channel": "voice", "source": spelled,
        "identity": {"kind": "x-card", "value": spelled}, "method": "pin"})
    agent = {**keys("agent"), "X-Agent-Id": spelled}
    await ok(app, "POST", f"/v1/handoffs/{handoff['id']}/accept", keys("agent"),
             {"agent_id": spelled})
    await ok(app, "GET", f"/v1/customers/{handoff['customer_id']}/context", agent)
    await ok(app, "GET", f"/v1/customers/{handoff['customer_id']}/turns", agent)
    await ok(app, "POST", f"/v1/handoffs/{handoff['id']}/resolve", keys("agent"),
             {"agent_id": spelled, "note": f"refunded to {spelled}"})
    withdrawn = await ok(app, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": conversation, "reason": "customer_request",
        "summary": said}, status=201)
    await ok(app, "POST", f"/v1/handoffs/{withdrawn['id']}/cancel", keys("bot"),
             {"note": f"they read out {spelled}"})
    returned = await ok(app, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat, "conversation_id": conversation, "reason": "customer_request",
        "summary": said}, status=201)
    await ok(app, "POST", f"/v1/handoffs/{returned['id']}/accept", keys("agent"),
             {"agent_id": spelled})
    await ok(app, "POST", f"/v1/handoffs/{returned['id']}/hand-back", keys("agent"),
             {"agent_id": spelled, "to": slug or "bot", "note": f"refund sent to {spelled}"})
    # A risky turn raises an alert quoting it, which a supervisor acknowledges.
    await ok(app, "POST", f"/v1/conversations/{path_id(conversation)}/turns", keys("bot"), {
        "customer": chat, "turns": [{"id": f"{spelled}-3", "role": "customer", "ts": at(4),
                                     "text": f"a lawsuit over {spelled}"}]})
    [alert] = [a for a in (await ok(app, "GET", "/v1/alerts", keys("supervisor")))["items"]
               if a["customer_id"] == handoff["customer_id"]]
    await ok(app, "POST", f"/v1/alerts/{alert['id']}/ack", keys("supervisor"),
             {"supervisor_id": spelled})
    # The agent panel: a token for the agent, a reply into the conversation as the brief names
    # it, and the re-ask check the panel runs while the agent types.
    token = await ok(app, "POST", "/v1/desk/tokens", keys("agent"), {"agent_id": spelled})
    desk = {"Authorization": f"Bearer {token['token']}"}
    await ok(app, "POST", f"/v1/conversations/{path_id(stored)}/turns", desk, {
        "turns": [{"id": f"desk {spelled}", "role": "agent", "ts": at(3),
                   "text": f"I see the card {spelled}; what is your card number?"}]})
    await ok(app, "POST", f"/v1/customers/{handoff['customer_id']}/reask-check", desk,
             {"text": f"Is it {spelled}?"})


async def through_the_adapters(app: Client, keys: Keys, pan: str, spelled: str) -> None:
    """Every vendor adapter, with the card number wherever its payload carries text or ids."""
    said = f"my card is {spelled}"
    # A session id is the last segment of Dialogflow's session path.
    session = spelled if "/" not in spelled else grouped(pan, "-")
    _, body = dialogflow.webhook(said, session=f"s {session}", tag="handoff", parameters={
        "card_number": spelled, "account": spelled, "handoff_summary": said},
        messages=(f"You said {spelled}",))
    body["detectIntentResponseId"] = spelled
    await dialogflow.post(app, keys, body)

    _, event = lex.handoff_event({"card": spelled, "account_number": spelled,
                                  "handoff_summary": said})
    event |= {"sessionId": spelled, "inputTranscript": said}
    event["sessionState"]["originatingRequestId"] = spelled
    await lex.post(app, keys, event)

    sender, events = rasa.broker_events(spelled)
    events[0] |= {"text": said, "message_id": spelled}
    events[0]["parse_data"]["entities"] = [{"entity": "card", "value": spelled}]
    events[1]["text"] = f"You said {spelled}"
    events[2] |= {"name": "card_number", "value": spelled}
    events.append({"event": "slot", "name": "handoff_request", "value": True,
                   "sender_id": sender, "timestamp": rasa.T0 + 9})
    await rasa.post(app, keys, events)

    sid = f"CA{pan}x{uuid.uuid4().hex}"
    phone = f"+1415{random.randint(2000000, 9999999)}"
    auth = twilio.basic(keys)
    incoming = twilio.vary(twilio.sample("twilio-voice-incoming.form"), CallSid=sid,
                           From=phone, Caller=phone)
    twilio.twiml(await twilio.post(app, twilio.VOICE, incoming, auth))
    for attempt, entered in enumerate([{"Digits": pan}, {"Digits": "", "SpeechResult": said}]):
        gathered = twilio.vary(twilio.sample("twilio-gather-digits.form"), CallSid=sid,
                               From=phone, Caller=phone, **entered)
        twilio.twiml(await twilio.post(app, f"{twilio.GATHER}?attempt={attempt + 1}",
                                       gathered, auth))

    contact = f"contact {spelled}"
    for operation, more in [("identify", {"fact_card": spelled, "account": spelled}),
                            ("turn", {"text": said, "turn_id": spelled}),
                            ("verify", {"account": spelled, "method": "pin"}),
                            ("handoff", {"summary": said, "intent": said})]:
        await connect_flow(app, keys, connect_event(contact=contact, operation=operation,
                                                    **more))


@pytest.mark.parametrize("spelling", SPELLINGS, ids=NAMES)
async def test_no_spelling_of_a_card_number_reaches_redis_the_aof_or_a_log_line(
        debug_logs: pytest.LogCaptureFixture, app: Client, keys: Keys, redis_sync: redis.Redis,
        redis_server: RedisServer, spelling: Spelling) -> None:
    aof = AppendOnlyFile(aof_directories(redis_server))
    pan = fresh_pan()
    spelled = spelling.write(pan)
    slug = spelled if spelling.slug else None

    await through_the_api(app, keys, spelled, slug)
    await through_the_adapters(app, keys, pan, spelled)
    # Whatever the service logs about such a request is masked too, traceback included.
    try:
        raise ValueError(f"could not parse {spelled}")
    except ValueError:
        logs.logger("handoff.api").exception("rejected turn %s", spelled)

    stored, scanned = store_text(redis_sync)
    appended = aof.appended()
    records = [*debug_logs.get_records("setup"), *debug_logs.records]
    lines = "\n".join(line for record in records for line in rendered(record))
    where = f"{scanned} keys, {len(appended)} AOF bytes, {len(records)} log records"
    assert scanned > 20 and len(records) > 0, f"too little written to prove anything: {where}"
    assert not leaked([pan], stored), f"in Redis ({where})"
    assert not leaked([pan], appended.decode("utf-8", errors="replace"), appended), \
        f"in the AOF ({where})"
    assert not leaked([pan], lines), f"in a log line ({where})"
    shown = re.findall(r"\*{4} \*{4} \*{4} \d{4}", mask_text(spelled))[-1]
    assert shown in stored and shown in lines, f"no masked form ({where})"


def rendered(record: logging.LogRecord) -> Iterator[str]:
    """A record as the service's own formatters write it, and as plain text."""
    yield logging.Formatter("%(name)s %(message)s").format(record)
    yield logs.JsonFormatter().format(record)
