"""Security scenarios: tenants never see each other, keys only do what their role allows,
claims never open someone else's context, merges are deliberate, and card numbers never land.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from handoff.services.identity import REF_KINDS
from tests.conftest import Keys
from tests.redis_peek import (
    Snapshot,
    assert_unchanged,
    everything,
    not_an_attempt_counter,
    snapshot,
)
from tests.scenario import (
    ACCOUNT,
    BY_ID,
    CALL,
    HANDOFF_BODY,
    ROLES,
    ROUTES,
    VERIFY_BODY,
    Json,
    Route,
    World,
    assert_problem,
    brief_of,
    build_world,
    call,
    chat_customer,
    ok,
    phone_customer,
    ref,
    turn,
)

Client = TestClient[Any, Any]


def acme_state(client: redis.Redis) -> Snapshot:
    """Everything but globex's own records: its hash-tagged keys, its API key records, the
    entries of shared indexes (API key id -> record) that point at those, and the invalidation
    notices that name its keys."""
    everything_ = snapshot(client)
    records = {key: value for key, (kind, value) in everything_.items()
               if kind == "hash" and value.get(b"tenant") == b"globex"}
    pointers = {key.rsplit(b":", 1)[-1] for key in records}  # the record's digest
    state: Snapshot = {}
    for key, (kind, value) in everything_.items():
        if b"{globex" in key or key in records:
            continue
        if kind == "hash":
            value = {f: v for f, v in value.items() if v not in pointers}
        if kind == "stream":  # notices that globex's own keys changed (its webhook list)
            value = [(i, f) for i, f in value if not any(b"{globex" in v for v in f.values())]
        state[key] = (kind, value)
    return state


# -- nothing crosses tenants ------------------------------------------------------------------


def foreign_paths(world: World, route: Route, role: str) -> list[tuple[str, int]]:
    """Each way of naming acme's data in this route's path (every kind of customer ref), and
    the status it gets: 404, or 403 for an identity kind the role never looks customers up by
    (an answer that is the same whether or not any tenant has that customer)."""
    if "{ref}" in route.path:
        return [(world.path(route, customer=r),
                 404 if r.startswith("cus_") or r.partition(":")[0] in REF_KINDS.get(
                     role, {r.partition(":")[0]}) else 403)
                for r in world.refs]
    return [(world.path(route), 404)]


async def globex_gets_404(client: Client, keys: Keys, world: World, route: Route,
                          role: str) -> None:
    for path, status in foreign_paths(world, route, role):
        answer = await call(client, route.method, path, headers=keys(role, "globex"),
                            json_body=route.body)
        assert_problem(answer, status)


async def globex_lists_nothing(client: Client, keys: Keys, world: World, route: Route,
                               role: str) -> None:
    for query in route.queries:
        answer = await call(client, "GET", world.path(route, query=query),
                            headers=keys(role, "globex"))
        assert answer.status == 200, (query, answer.raw[:300])
        assert answer.json() == {"items": [], "next": None}


async def globex_sees_only_its_own_records(client: Client, keys: Keys, world: World,
                                           route: Route, role: str) -> None:
    result = await ok(client, route.method, world.path(route), keys(role, "globex"), route.body,
                      status=route.status)
    records = result.get("items", [result])
    assert records
    assert {r["tenant"] for r in records} == {"globex"}
    assert world.key_id not in [r["id"] for r in records]


async def globex_writes_its_own_customer(client: Client, keys: Keys, world: World,
                                         route: Route, role: str) -> None:
    result = await ok(client, route.method, world.path(route), keys(role, "globex"), route.body,
                      status=route.status)
    theirs = result["customer_id"]
    assert theirs != world.customer_id
    brief = await brief_of(client, keys, theirs, tenant="globex")
    assert "I was charged twice" not in [t["text"] for t in brief["turns"]]
    assert "order_number" not in brief["facts"]


async def globex_streams_only_its_own_queue(client: Client, keys: Keys, world: World,
                                            route: Route, role: str) -> None:
    own = await ok(client, "POST", "/v1/handoffs", keys("bot", "globex"), HANDOFF_BODY,
                   status=201)
    seen = ""
    async with client.get(route.path, headers={**keys(role, "globex"), "Last-Event-ID": "0-0"}
                          ) as stream:
        assert stream.status == 200
        async with asyncio.timeout(5):
            while own["id"] not in seen:
                seen += (await stream.content.readany()).decode()
    for acme_id in (world.handoff_id, world.first_handoff_id, world.customer_id):
        assert acme_id not in seen


async def globex_streams_only_its_own_alerts(client: Client, keys: Keys, world: World,
                                             route: Route, role: str) -> None:
    own = await ok(client, "POST", "/v1/conversations/g-web/turns", keys("bot", "globex"), {
        "customer": chat_customer("globex-visitor"), "channel": "chat",
        "turns": [turn("g1", "I will sue you")]})
    seen = ""
    async with client.get(route.path, headers={**keys(role, "globex"), "Last-Event-ID": "0-0"}
                          ) as stream:
        assert stream.status == 200
        async with asyncio.timeout(5):
            while own["customer_id"] not in seen:
                seen += (await stream.content.readany()).decode()
    for acme_id in (world.alert_id, world.customer_id):
        assert acme_id not in seen


async def globex_mints_a_token_that_finds_nothing_of_acme(
        client: Client, keys: Keys, world: World, route: Route, role: str) -> None:
    minted = await ok(client, route.method, world.path(route), keys(role, "globex"), route.body)
    assert minted["tenant"] == "globex"
    token = {"Authorization": f"Bearer {minted['token']}"}
    for customer in world.refs:
        answer = await call(client, "GET", f"/v1/customers/{ref(customer)}/context",
                            headers=token)
        assert_problem(answer, 404)
    # Each finds nothing of acme's on its own routes: an agent's panel no hand-off, a
    # supervisor's no alert.
    elsewhere = (("GET", f"/v1/handoffs/{world.handoff_id}") if role == "agent" else
                 ("POST", f"/v1/alerts/{world.alert_id}/ack"))
    assert_problem(await call(client, *elsewhere, headers=token), 404)


async def globex_counts_only_its_own_traffic(client: Client, keys: Keys, world: World,
                                             route: Route, role: str) -> None:
    result = await ok(client, route.method, world.path(route), keys(role, "globex"))
    assert result["tenant"] == "globex"
    assert result["total"]["requested"] == 0  # acme's world asked for two hand-offs
    mine = await ok(client, route.method, world.path(route), keys(role))
    assert mine["total"]["requested"] == 2


Outcome = Callable[[Client, Keys, World, Route, str], Awaitable[None]]
FOREIGN: dict[str, Outcome] = {"404": globex_gets_404, "empty": globex_lists_nothing,
                               "separate": globex_writes_its_own_customer,
                               "own": globex_sees_only_its_own_records,
                               "stream": globex_streams_only_its_own_queue,
                               "alerts": globex_streams_only_its_own_alerts,
                               "token": globex_mints_a_token_that_finds_nothing_of_acme,
                               "figures": globex_counts_only_its_own_traffic}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_another_tenants_keys_find_nothing_of_acme_and_change_nothing(
        route: Route, client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    world = await build_world(client, keys)
    brief = await brief_of(client, keys, world.customer_id)
    before = acme_state(redis_sync)
    for role in route.roles:
        await FOREIGN[route.foreign](client, keys, world, route, role)
    assert_unchanged(before, acme_state(redis_sync))
    assert await brief_of(client, keys, world.customer_id) == brief


async def test_acmes_own_agent_reads_acmes_customer_by_every_ref_globex_tried(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    for customer in world.refs:
        assert (await brief_of(client, keys, customer))["customer"]["id"] == world.customer_id


async def test_posting_turns_to_acmes_conversation_id_under_globex_starts_a_globex_customer(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    brief = await brief_of(client, keys, world.customer_id)
    route = BY_ID["POST /v1/conversations/{conversation}/turns"]
    result = await ok(client, "POST", world.path(route), keys("bot", "globex"), route.body)
    assert result["customer_id"] != world.customer_id
    assert result["appended"] == 1
    theirs = await brief_of(client, keys, result["customer_id"], tenant="globex")
    assert [t["text"] for t in theirs["turns"]] == ["Still there?"]
    assert await brief_of(client, keys, world.customer_id) == brief
    assert_problem(await call(client, "GET", f"/v1/customers/{result['customer_id']}/context",
                              headers=keys("agent")), 404)


async def test_a_continuation_code_another_tenant_tried_still_works_for_its_own_tenant(
        client: Client, keys: Keys) -> None:
    world = await build_world(client, keys)
    path = f"/v1/continuations/{world.code}/redeem"
    body: Json = {"customer": phone_customer("+15550107777"), "conversation_id": "CA-g1",
                  "channel": "voice"}
    assert_problem(await call(client, "POST", path, headers=keys("ivr", "globex"),
                              json_body=body), 404)
    result = await ok(client, "POST", path, keys("ivr"), body)
    assert result["customer_id"] == world.customer_id
    assert result["handoff_id"] == world.handoff_id


# -- roles and keys -----------------------------------------------------------------------------

BAD_AUTHORIZATION: dict[str, str | None] = {
    "no Authorization header": None,
    "Basic credentials": "Basic dXNlcjpwYXNzd29yZA==",
    "Basic credentials that are not base64": "Basic !!not-base64!!",
    "Bearer without a key": "Bearer",
    "another scheme": "Token hk_abc",
    "a key nobody issued": "Bearer hk_" + "A" * 43,
    "an absurdly long key": "Bearer " + "k" * 300,
}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_keys_of_every_other_role_are_forbidden_and_change_nothing(
        route: Route, client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    world = await build_world(client, keys)
    before = snapshot(redis_sync)
    for role in (r for r in ROLES if r not in route.roles):
        answer = await call(client, route.method, world.path(route), headers=keys(role),
                            json_body=route.body)
        problem = assert_problem(answer, 403)
        assert role in problem["detail"]
    assert_unchanged(before, snapshot(redis_sync))


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_requests_without_a_valid_key_are_unauthorized_and_change_nothing(
        route: Route, client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    world = await build_world(client, keys)
    before = snapshot(redis_sync, not_an_attempt_counter)
    for value in BAD_AUTHORIZATION.values():
        answer = await call(client, route.method, world.path(route),
                            headers={} if value is None else {"Authorization": value},
                            json_body=route.body)
        assert_problem(answer, 401)
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


async def test_a_key_sent_as_the_password_of_basic_credentials_authenticates(
        client: Client, keys: Keys) -> None:
    # Some vendors (Twilio) can only carry credentials in the webhook URL: https://u:key@host/.
    secret = keys("agent")["Authorization"].removeprefix("Bearer ")
    basic = base64.b64encode(f"handoff:{secret}".encode()).decode()
    answer = await call(client, "GET", "/v1/handoffs", headers={"Authorization": f"Basic {basic}"})
    assert answer.status == 200
    wrong = base64.b64encode(f"{secret}:handoff".encode()).decode()
    answer = await call(client, "GET", "/v1/handoffs", headers={"Authorization": f"Basic {wrong}"})
    assert_problem(answer, 401)


async def test_the_openapi_document_lists_every_route_of_the_table_with_its_roles(
        client: Client) -> None:
    answer = await call(client, "GET", "/openapi.json")
    assert answer.status == 200
    documented: dict[str, list[str]] = {}
    for path, operations in answer.json()["paths"].items():
        for method, operation in operations.items():
            if "security" not in operation:
                continue  # operations endpoints (/healthz, /openapi.json) need no key
            if path.startswith("/v1/adapters/"):
                continue  # vendor formats: each adapter's own tests check its roles
            shape = Route(method.upper(), path, ()).shape
            documented[shape] = operation["description"].removeprefix("Roles: ").split(", ")
    table = {route.shape: sorted(route.roles) for route in ROUTES}
    assert documented == table


# -- claims never open another customer's context -----------------------------------------------

CLAIMANT_CONVERSATION = "web-9"


async def ivr_verifies_the_account_holder(client: Client, keys: Keys) -> str:
    """A caller proves account 88812345 with a PIN and says why they called."""
    verified = await ok(client, "POST", "/v1/verifications", keys("ivr"), VERIFY_BODY)
    await ok(client, "POST", f"/v1/conversations/{CALL}/turns", keys("ivr"), {
        "customer": phone_customer(), "channel": "voice", "source": "acme-ivr",
        "turns": [turn("c1", "I need my balance")], "facts": {"topic": "balance"}})
    holder: str = verified["customer_id"]
    return holder


async def bot_claims_the_account(client: Client, keys: Keys, role: str = "bot") -> str:
    """Someone on the web chat types account 88812345; nothing proves it is theirs."""
    posted = await ok(client, "POST", f"/v1/conversations/{CLAIMANT_CONVERSATION}/turns",
                      keys(role), {
                          "customer": chat_customer("visitor-9",
                                                    {"kind": "account", "value": ACCOUNT}),
                          "channel": "chat", "source": "acme-bot",
                          "turns": [turn("w1", "Show me my last statement")],
                          "facts": {"statement_month": "October"}})
    claimant: str = posted["customer_id"]
    return claimant


async def test_a_bot_claiming_a_verified_account_gets_a_customer_of_its_own(
        client: Client, keys: Keys) -> None:
    holder = await ivr_verifies_the_account_holder(client, keys)
    claimant = await bot_claims_the_account(client, keys)
    assert claimant != holder


async def test_the_account_holders_brief_shows_nothing_the_claiming_bot_wrote(
        client: Client, keys: Keys) -> None:
    holder = await ivr_verifies_the_account_holder(client, keys)
    before = await brief_of(client, keys, f"account:{ACCOUNT}")
    await bot_claims_the_account(client, keys)
    after = await brief_of(client, keys, f"account:{ACCOUNT}")
    assert after["customer"]["id"] == holder
    assert [t["text"] for t in after["turns"]] == ["I need my balance"]
    assert "statement_month" not in after["facts"]
    assert CLAIMANT_CONVERSATION not in [j["conversation_id"] for j in after["journey"]]
    assert after == before


async def test_the_claimants_brief_shows_the_account_as_an_unverified_unlinked_claim(
        client: Client, keys: Keys) -> None:
    await ivr_verifies_the_account_holder(client, keys)
    claimant = await bot_claims_the_account(client, keys)
    brief = await brief_of(client, keys, claimant)
    identities = {(i["kind"], i["value"]): i for i in brief["customer"]["identities"]}
    account = identities[("account", ACCOUNT)]
    assert (account["verified"], account["linked"]) == (False, False)
    assert identities[("chat", "visitor-9")]["linked"] is True
    assert brief["verifications"] == []
    assert [t["text"] for t in brief["turns"]] == ["Show me my last statement"]
    assert "topic" not in brief["facts"]


async def test_a_bot_cannot_set_facts_on_a_customer_named_by_account(
        client: Client, keys: Keys) -> None:
    await ivr_verifies_the_account_holder(client, keys)
    before = await brief_of(client, keys, f"account:{ACCOUNT}")
    answer = await call(client, "PUT", f"/v1/customers/{ref('account:' + ACCOUNT)}/facts",
                        headers=keys("bot"), json_body={"facts": {"topic": "close account"}})
    assert "chat:" in assert_problem(answer, 403)["detail"]
    assert await brief_of(client, keys, f"account:{ACCOUNT}") == before


async def test_an_agent_reads_the_account_holders_context_by_account(
        client: Client, keys: Keys) -> None:
    holder = await ivr_verifies_the_account_holder(client, keys)
    await bot_claims_the_account(client, keys)
    brief = await brief_of(client, keys, f"account:{ACCOUNT}")
    assert brief["customer"]["id"] == holder
    assert brief["facts"]["topic"]["value"] == "balance"
    assert [v["identity"] for v in brief["verifications"]] == [
        {"kind": "account", "value": ACCOUNT}]


# -- merges happen only through verification or a redeemed code, and are recorded -----------

@pytest.mark.parametrize("role", ["bot", "ivr", "agent"])
async def test_claims_alone_never_merge_customers(role: str, client: Client,
                                                  keys: Keys) -> None:
    holder = await ivr_verifies_the_account_holder(client, keys)
    claimant = await bot_claims_the_account(client, keys, role)
    for customer in (holder, claimant):
        brief = await brief_of(client, keys, customer)
        assert brief["customer"]["id"] == customer
        assert brief["merges"] == []
        assert brief["customer"]["merged"] == []


async def test_a_verification_merges_the_caller_into_the_account_holder_and_records_it(
        client: Client, keys: Keys) -> None:
    holder = await ivr_verifies_the_account_holder(client, keys)
    second_call = await ok(client, "POST", "/v1/conversations/CA-2/turns", keys("ivr"), {
        "customer": phone_customer("+15550102222"), "channel": "voice",
        "turns": [turn("d1", "Calling from my work phone")]})
    caller = second_call["customer_id"]
    assert caller != holder
    verified = await ok(client, "POST", "/v1/verifications", keys("ivr"), {
        **VERIFY_BODY, "customer": phone_customer("+15550102222"), "conversation_id": "CA-2"})
    assert verified["customer_id"] == holder
    assert verified["merged"] == [caller]
    brief = await brief_of(client, keys, holder)
    assert [(m["customer_id"], m["via"]) for m in brief["merges"]] == [
        (caller, "verification:account")]
    assert "Calling from my work phone" in [t["text"] for t in brief["turns"]]


async def test_a_redeemed_continuation_code_merges_the_call_into_the_chat_and_records_it(
        client: Client, keys: Keys) -> None:
    chat = await ok(client, "POST", "/v1/conversations/web-5/turns", keys("bot"), {
        "customer": chat_customer("visitor-5"), "channel": "chat",
        "turns": [turn("e1", "My parcel never arrived")]})
    requested = await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat_customer("visitor-5"), "conversation_id": "web-5", "channel": "chat",
        "reason": "bot_failure", "continuation": True}, status=201)
    call_ = await ok(client, "POST", "/v1/conversations/CA-5/turns", keys("ivr"), {
        "customer": phone_customer("+15550105555"), "channel": "voice",
        "turns": [turn("f1", "I have a code from the chat")]})
    assert call_["customer_id"] != chat["customer_id"]
    redeemed = await ok(client, "POST",
                        f"/v1/continuations/{requested['continuation_code']}/redeem",
                        keys("ivr"), {"customer": phone_customer("+15550105555"),
                                      "conversation_id": "CA-5", "channel": "voice"})
    assert redeemed["customer_id"] == chat["customer_id"]
    assert redeemed["merged"] == [call_["customer_id"]]
    brief = await brief_of(client, keys, chat["customer_id"])
    assert [(m["customer_id"], m["via"]) for m in brief["merges"]] == [
        (call_["customer_id"], "continuation")]
    assert [t["text"] for t in brief["turns"]] == [
        "My parcel never arrived", "I have a code from the chat"]


async def test_verifying_two_card_like_accounts_that_end_alike_merges_nobody(
        client: Client, keys: Keys) -> None:
    """Both account numbers pass the Luhn check, so both are stored masked as
    "**** **** **** 1111"; they are still two accounts of two customers."""
    callers = []
    for n, account in enumerate(("4111111111111111", "5000000000031111")):
        phone = f"+1555010000{n}"
        call_ = await ok(client, "POST", f"/v1/conversations/CA-{n}/turns", keys("ivr"), {
            "customer": phone_customer(phone), "channel": "voice",
            "turns": [turn("a1", f"Calling about account {n}")]})
        verified = await ok(client, "POST", "/v1/verifications", keys("ivr"), {
            "customer": phone_customer(phone), "conversation_id": f"CA-{n}", "channel": "voice",
            "identity": {"kind": "account", "value": account}, "method": "pin"})
        assert verified["merged"] == []
        assert verified["customer_id"] == call_["customer_id"]
        callers.append(call_["customer_id"])
    assert callers[0] != callers[1]
    brief = await brief_of(client, keys, "account:5000000000031111")
    assert brief["customer"]["id"] == callers[1]
    assert [t["text"] for t in brief["turns"]] == ["Calling about account 1"]


# -- card numbers never reach Redis ---------------------------------------------------------

ORDER_NUMBER = "1234567812345678"  # 16 digits, fails the Luhn check: not a card number
KNOWN_PANS = ("4111 1111 1111 1111", "5500-0000-0000-0004")


def luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def random_pan() -> str:
    partial = "4" + "".join(random.choice("0123456789") for _ in range(14))
    return partial + luhn_check_digit(partial)


def digits(pan: str) -> str:
    return re.sub(r"\D", "", pan)


def leaks(pan: str, text: str) -> bool:
    """The PAN's digits in order, with or without single spaces or dashes between them."""
    return re.search("[ -]?".join(digits(pan)), text) is not None


def masked(pan: str) -> str:
    return "**** **** **** " + digits(pan)[-4:]


async def card_numbers_everywhere(client: Client, keys: Keys, pans: list[str]) -> None:
    """A customer reads card numbers out in every free-text field a channel can fill."""
    visa, master, fresh = pans
    bot, ivr = keys("bot"), keys("ivr")
    await ok(client, "POST", "/v1/conversations/web-card/turns", bot, {
        "customer": chat_customer("visitor-card", {"kind": "x-card", "value": fresh}),
        "channel": "chat", "source": "acme-bot",
        "turns": [turn("p1", f"My card {visa} was charged twice for order {ORDER_NUMBER}, "
                             f"the other one is {master} and the new one {fresh}",
                       entities={"card": digits(visa), "other_card": master, "new": fresh,
                                 "order": ORDER_NUMBER})],
        "facts": {"card": master, "order": ORDER_NUMBER}})
    await ok(client, "PUT", f"/v1/customers/{ref('chat:visitor-card')}/facts", bot,
             {"facts": {"card_on_file": {"value": visa}, "replacement": fresh}})
    requested = await ok(client, "POST", "/v1/handoffs", bot, {
        "customer": chat_customer("visitor-card"), "conversation_id": "web-card",
        "channel": "chat", "reason": "customer_request",
        "summary": f"Double charge on card {visa}; customer also gave {fresh}"}, status=201)
    await ok(client, "POST", "/v1/verifications", ivr, {
        "customer": chat_customer("visitor-card"), "conversation_id": "web-card",
        "channel": "chat", "identity": {"kind": "x-card", "value": master}, "method": "otp"})
    await ok(client, "POST", f"/v1/handoffs/{requested['id']}/cancel", bot,
             {"note": f"customer will call back about {visa}"})


async def test_no_full_card_number_reaches_redis(client: Client, keys: Keys,
                                                 redis_sync: redis.Redis) -> None:
    pans = [*KNOWN_PANS, random_pan()]
    await card_numbers_everywhere(client, keys, pans)
    stored = everything(redis_sync)
    for pan in pans:
        assert not leaks(pan, stored), f"{pan} reached Redis"


async def test_card_numbers_are_stored_masked_to_their_last_four_digits(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    pans = [*KNOWN_PANS, random_pan()]
    await card_numbers_everywhere(client, keys, pans)
    stored = everything(redis_sync)
    assert "**** **** **** 1111" in stored
    for pan in pans:
        assert masked(pan) in stored


async def test_a_sixteen_digit_order_number_that_is_no_card_number_stays_intact(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await card_numbers_everywhere(client, keys, [*KNOWN_PANS, random_pan()])
    assert ORDER_NUMBER in everything(redis_sync)
    brief = await brief_of(client, keys, "chat:visitor-card")
    assert brief["facts"]["order"]["value"] == ORDER_NUMBER


async def test_card_numbers_sent_as_json_numbers_never_reach_redis_either(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    fresh = random_pan()
    await ok(client, "POST", "/v1/conversations/web-num/turns", keys("bot"), {
        "customer": chat_customer("visitor-num"), "channel": "chat",
        "turns": [turn("n1", "here it is", entities={"card": int(fresh)})],
        "facts": {"card_number": 4111111111111111}})
    stored = everything(redis_sync)
    for pan in ("4111111111111111", fresh):
        assert not leaks(pan, stored), f"{pan} reached Redis"
    assert masked(fresh) in stored
