"""Twilio Voice: the incoming-call webhook and the `<Gather>` action callback, answered in TwiML.

A call is recorded as a voice conversation named by its `CallSid`, of the customer its `From`
number leads to (the number is the voice channel's own identity, so it is linked). The caller is
asked for a continuation code or an account number. A code is redeemed, which joins the call to
the chat customer that was given it; an account number is only a claim (handoff checks no PINs:
the tenant's own IVR step does, and posts `POST /v1/verifications`). Either way the caller is then
put through as `HANDOFF_TWILIO_JOIN` says. A caller's mistake (a wrong code, silence) is answered
with TwiML that asks again or puts them through: a 4xx would make Twilio play an error message.

Authentication is two checks. The webhook URL carries a handoff `ivr` key as the password of
Basic credentials (`https://twilio:<key>@host/v1/adapters/twilio/voice`); Twilio first calls
without them and sends them after a 401 with `WWW-Authenticate`. And every request must carry a
valid `X-Twilio-Signature` made with the tenant's Twilio auth token
(https://www.twilio.com/docs/usage/webhooks/webhooks-security). Twilio leaves the credentials out
of the URL it signs, so the URL is rebuilt without them: from `HANDOFF_PUBLIC_URL` plus the path
and query when set (behind a proxy the request's own URL is not the one Twilio called), else from
the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit
from xml.etree.ElementTree import Element, SubElement, tostring

from aiohttp import web
from pydantic import BaseModel, ValidationError

from adapters.base import PREFIX, Adapter, Core, build
from handoff.api import bodies
from handoff.api.routing import Routes
from handoff.api.state import SETTINGS
from handoff.kernel.errors import Forbidden, NotFound, TooManyRequests, Unprocessable
from handoff.kernel.settings import Settings
from schemas.conversations import AppendTurns
from schemas.handoffs import HandoffIn, RedeemIn
from schemas.vendors.twilio import GatherResult, VoiceCall

NAME = "twilio"
BASE = f"{PREFIX}{NAME}/"
SOURCE = "twilio"
TWIML = "application/xml"
SIGNATURE = "X-Twilio-Signature"
IDEMPOTENCY = "I-Twilio-Idempotency-Token"
# Prompts per call before the caller is put through without a code.
MAX_ATTEMPTS = 3
E164 = re.compile(r"^\+[1-9][0-9]{5,14}$")
# What Twilio sends as `From` when the caller withheld their number.
ANONYMOUS = {"+266696687", "+7378742833", "+2562533", "+86282452253", "+8656696"}
TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
V = TypeVar("V", bound=BaseModel)

routes = Routes()


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's signature: base64 HMAC-SHA1 over the URL then every `name + value`, sorted by
    name and, for a repeated name, by value."""
    data = url + "".join(name + value for name, value in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def url_variants(url: str) -> list[str]:
    """The URL without its port and with one (the scheme's default added if it had none).

    Twilio has signed either form over the years, so its SDKs accept both; credentials are
    dropped because Twilio signs the URL without them.
    """
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        host, port = hostport, ""
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    default = "443" if parts.scheme == "https" else "80"
    return [f"{parts.scheme}://{host}{rest}", f"{parts.scheme}://{host}:{port or default}{rest}"]


def signed_by_twilio(auth_token: str, url: str, params: list[tuple[str, str]],
                     header: str | None) -> bool:
    """Whether `header` is Twilio's signature of this request; compared in constant time."""
    given = (header or "").strip()
    if not given.isascii():  # undecodable header bytes: a wrong signature, not a crash
        return False
    matches = [hmac.compare_digest(signature(auth_token, u, params), given)
               for u in url_variants(url)]
    return bool(given) and any(matches)


def called_url(request: web.Request, settings: Settings) -> str:
    """The URL Twilio called: the configured public base, or this request's, plus path and
    query exactly as sent."""
    if settings.public_url:
        parts = urlsplit(settings.public_url.rstrip("/"))
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}{request.raw_path}"
    return f"{request.scheme}://{request.host}{request.raw_path}"


async def _signed_form(request: web.Request) -> tuple[Core, Settings, dict[str, str]]:
    """The caller, settings and form fields of a request Twilio signed; 403 otherwise."""
    core = Core(request)
    settings = request.app[SETTINGS]
    pairs = await bodies.form(request)
    token = settings.twilio_auth_tokens.get(core.principal.tenant)
    if token is None:
        raise Forbidden("this tenant has no Twilio auth token configured "
                        "(HANDOFF_TWILIO_AUTH_TOKENS), so Twilio requests cannot be checked")
    if not signed_by_twilio(token.get_secret_value(), called_url(request, settings), pairs,
                            request.headers.get(SIGNATURE)):
        raise Forbidden(f"the {SIGNATURE} header is missing or does not match this request")
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return core, settings, fields


def _vendor(model: type[V], fields: dict[str, str]) -> V:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise Unprocessable("the form is not a Twilio voice request",
                            bodies.errors_of(exc, ("form",))) from exc


def _customer(core: Core, call: VoiceCall, *claims: dict[str, str]) -> dict[str, Any] | None:
    """The caller's number as a phone identity, when there is a real one, plus any claims."""
    identities = list(claims)
    if (E164.match(call.From) and call.From not in ANONYMOUS
            and core.claimable("phone", call.From)):
        identities.insert(0, {"kind": "phone", "value": call.From})
    return {"identities": identities} if identities else None


def _turn_id(core: Core, request: web.Request, call: VoiceCall, step: str) -> str:
    """Twilio's idempotency token when sent (the same on every retry), else the call and step."""
    token = request.headers.get(IDEMPOTENCY, "")
    if TOKEN.match(token):
        return f"twilio:{core.vendor_id(token)}"
    return f"twilio:{core.vendor_id(call.CallSid)}:{step}"


def _attempt(request: web.Request) -> int:
    raw = request.query.get("attempt", "1")
    # isdigit() alone takes "²" (which int() refuses) and other scripts' digits.
    ok = raw.isascii() and raw.isdigit() and len(raw) < 4
    return min(max(int(raw), 1), MAX_ATTEMPTS) if ok else 1


async def _append(core: Core, request: web.Request, call: VoiceCall, step: str, *, role: str,
                  text: str, customer: dict[str, Any] | None, **more: Any) -> None:
    turn = {"id": _turn_id(core, request, call, step), "role": role, "text": text,
            "ts": core.now(),
            **{k: v for k, v in more.items() if v is not None}}
    body = build(AppendTurns, {"customer": customer, "channel": "voice", "source": SOURCE,
                               "turns": [turn]}, where="form")
    await core.append_turns(core.vendor_id(call.CallSid), body)


@routes.route("POST", f"{BASE}voice", roles=("ivr",), produces=TWIML,
              summary="Twilio incoming-call webhook: records the call, asks for a code (TwiML)")
async def incoming(request: web.Request) -> web.Response:
    core, settings, fields = await _signed_form(request)
    call = _vendor(VoiceCall, fields)
    text = (f"Phone call to {call.To or 'an unknown number'} "
            f"({call.Direction or 'inbound'}, {call.CallStatus or 'status unknown'})")
    await _append(core, request, call, "start", role="system", text=text,
                  customer=_customer(core, call))
    return _twiml(*_ask(settings, attempt=1))


@routes.route("POST", f"{BASE}gather", roles=("ivr",), produces=TWIML,
              summary="Twilio <Gather> callback: redeems a continuation code or records an "
                      "account number, then puts the call through (TwiML)")
async def gathered(request: web.Request) -> web.Response:
    core, settings, fields = await _signed_form(request)
    result = _vendor(GatherResult, fields)
    attempt = _attempt(request)
    kind, value = classify(result, settings.continuation_digits)
    heard = result.Digits or result.SpeechResult
    claims = [{"kind": "account", "value": value}] if kind == "account" else []
    if heard:
        await _append(core, request, result, f"gather-{attempt}", role="customer", text=heard,
                      customer=_customer(core, result, *claims),
                      intent={"code": "continuation_code", "account": "account_number"}.get(kind),
                      confidence=result.Confidence if result.SpeechResult else None)
    if kind == "code":
        redeem = build(RedeemIn, {"customer": _customer(core, result),
                                  "conversation_id": core.vendor_id(result.CallSid),
                                  "channel": "voice", "source": SOURCE}, where="form")
        try:
            joined = await core.redeem(value, redeem)
        except NotFound:
            if attempt < MAX_ATTEMPTS:
                return _twiml(_say("Sorry, that code was not recognised."),
                              *_ask(settings, attempt=attempt + 1))
        except TooManyRequests:
            pass  # too many wrong codes: the caller still reaches a person, without the chat
        else:
            return _twiml(*_join(settings, joined.handoff_id, joined.customer_id))
    elif kind == "none" and attempt < MAX_ATTEMPTS:
        return _twiml(_say("Sorry, I did not get that."), *_ask(settings, attempt=attempt + 1))
    handoff, _ = await core.request_handoff(build(HandoffIn, {
        "customer": _customer(core, result),
        "conversation_id": core.vendor_id(result.CallSid),
        "channel": "voice",
        "source": SOURCE, "reason": "customer_request", "queue": settings.twilio_queue,
        "summary": "Phone call put through without a continuation code"}, where="form"),
        f"twilio:{core.vendor_id(result.CallSid)}")
    return _twiml(*_join(settings, handoff.id, handoff.customer_id))


def classify(result: GatherResult, code_digits: int) -> tuple[str, str]:
    """What the caller entered: ("code", digits), ("account", digits) or ("none", "").

    Exactly `code_digits` digits are a continuation code; a leading `*` or any other length is
    an account number. Speech counts when it is only digits and separators ("4 8 2, 9 1 3").
    """
    raw = result.Digits
    if not raw and result.SpeechResult and re.fullmatch(r"[0-9 ,.\-*]+", result.SpeechResult):
        raw = result.SpeechResult
    starred = raw.lstrip(" ").startswith("*")
    digits = re.sub(r"[^0-9]", "", raw)
    if not digits:
        return "none", ""
    if len(digits) == code_digits and not starred:
        return "code", digits
    return "account", digits


def _say(text: str) -> Element:
    say = Element("Say")
    say.text = text
    return say


def _ask(settings: Settings, *, attempt: int) -> list[Element]:
    """A `<Gather>` for keys or speech that posts to the gather callback, relative to this
    URL, so it works under any path prefix and keeps the call's credentials."""
    gather = Element("Gather", {
        "input": "dtmf speech", "action": f"gather?attempt={attempt}", "method": "POST",
        "finishOnKey": "#", "timeout": "6", "speechTimeout": "auto",
        "actionOnEmptyResult": "true"})
    gather.append(_say(settings.twilio_prompt))
    return [gather]


def _join(settings: Settings, handoff_id: str | None, customer_id: str) -> list[Element]:
    """Put the call through as `HANDOFF_TWILIO_JOIN` says, telling the target who it is."""
    verb, _, target = settings.twilio_join.partition(":")
    ids = urlencode({k: v for k, v in (("handoff_id", handoff_id),
                                       ("customer_id", customer_id)) if v})
    join = "&" if "?" in target else "?"
    if verb == "enqueue":
        step = Element("Enqueue")
        step.text = target
    elif verb == "dial":
        step = Element("Dial")
        if target.startswith("sip:"):
            # SIP URI parameters named X-... reach the far end as headers.
            headers = urlencode({k: v for k, v in (("X-Handoff-Id", handoff_id),
                                                   ("X-Handoff-Customer", customer_id)) if v})
            SubElement(step, "Sip").text = f"{target}{join}{headers}"
        else:
            SubElement(step, "Number").text = target
    else:
        step = Element("Redirect", {"method": "POST"})
        step.text = f"{target}{join}{ids}"
    return [_say(settings.twilio_joined_prompt), step]


def _twiml(*verbs: Element) -> web.Response:
    root = Element("Response")
    root.extend(verbs)
    text = '<?xml version="1.0" encoding="UTF-8"?>' + tostring(root, encoding="unicode")
    return web.Response(text=text, content_type=TWIML)


adapter = Adapter(name=NAME, routes=routes,
                  summary="Twilio Voice webhooks: calls and <Gather> input, answered in TwiML")
