"""Effort KPIs: a known week of contact-centre traffic, played through the HTTP API on a clock the
test moves, then read back by a supervisor per day, per hour and per queue, every number checked.

The week (UTC; queues billing and fraud):

- Mon 09:00 Ana (chat) asks for a person in billing and calls in with the continuation code at
  09:02; the IVR verifies her account by PIN at 09:03 (valid 30 minutes). agent-1 accepts at
  09:04 (waited 240 s; verified; chat -> voice). At 09:04:30 the panel warns agent-1 that "Can I
  have your account number?" re-asks her account; agent-1 sends it anyway at 09:05, then hands
  her back to the bot at 09:10.
- Mon 14:00 Ben asks for billing and the bot withdraws it at 14:20.
- Tue 10:00 Cleo asks for fraud; agent-2 accepts at 10:00:30 (30 s). At 10:01 the panel warns
  agent-2 about asking her email; agent-2 does not ask. At 10:10 she calls it unacceptable: a
  risk alert nobody acknowledges. Resolved at 10:30.
- Wed 08:00 Ana is back on a new chat (billing); agent-1 accepts at 08:02 (120 s; her PIN expired
  on Monday; chat -> voice -> chat; a repeat contact: her Monday hand-off was 2 days before)
  and asks for her phone number at 08:03 (no warning was shown).
- Thu 22:00 Dan asks for billing; nobody takes it; at 23:30 agent-3 tries and finds it expired.
- Fri, Sat: nothing.
- Sun 10:00 Eve asks for billing, 10:00:10 Finn for fraud. agent-3 accepts Eve at 10:01:40
  (100 s), agent-2 Finn at 10:15:10 (900 s). Eve mentions her lawyer at 10:05: an alert a
  supervisor acknowledges at 10:07 (120 s). At 10:20 (and again at 10:21) agent-3 is warned
  about Eve's email; agent-3 asks for it only at 10:30, after the 5-minute window (heeded), and
  hands her back at 11:00. At 11:58 agent-2 is warned about Finn's email and asks at 12:01
  (sent anyway, counted in the warning's hour). At 15:00 an agent asks Hana, who was never
  handed to anyone, for her email. Gus asks for billing at 23:10; withdrawn at 23:20.
- Globex, another tenant, has one billing request on Sunday at 10:00.

The supervisor reads on Sunday 23:30.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from handoff.api.state import DEPS
from handoff.app import create_app
from handoff.kernel.settings import Settings
from handoff.services import apikeys
from handoff.store import keys as redis_keys
from tests.conftest import Keys
from tests.kpi_week import (
    MONDAY,
    READ_AT,
    Client,
    Clock,
    Traffic,
    Week,
    fact,
    figures,
    fresh_server,
    play_week,
    week,
    without_times,
)
from tests.scenario import Json, assert_problem, call, ok

# Every KPI key of acme (counters, samples, per customer).
KPI_KEYS = redis_keys.kpi_counters("acme", "*", "")

__all__ = ["week"]  # the fixture, imported so pytest finds it here


async def kpis(week: Week, query: str = "", role: str = "supervisor",
               tenant: str = "acme") -> Json:
    return await ok(week.client, "GET", f"/v1/kpis{query}", week.keys(role, tenant))


# -- the week, every number -------------------------------------------------------------------

MON = figures(requested=2, accepted=1, cancelled=1, handed_back=1,
              time_to_accept_p50_seconds=240, time_to_accept_p90_seconds=240,
              verified_at_accept=1, verification_carried=1.0, reasks=1,
              reasks_per_100_accepted=100.0, reask_warnings=1, reask_warnings_sent_anyway=1,
              by_fact={"account": fact(1, 100.0, warnings=1, sent_anyway=1)},
              channel_switches=1, channel_switches_per_handoff=1.0,
              journey_steps_per_handoff=2.0, repeat_contact_share=0.0)
TUE = figures(requested=1, accepted=1, resolved=1, time_to_accept_p50_seconds=30,
              time_to_accept_p90_seconds=30, verification_carried=0.0,
              reasks_per_100_accepted=0.0, reask_warnings=1, reask_warnings_heeded=1,
              by_fact={"email": fact(0, 0.0, warnings=1, heeded=1)},
              channel_switches_per_handoff=0.0, journey_steps_per_handoff=1.0,
              repeat_contact_share=0.0, alerts_raised=1)
WED = figures(requested=1, accepted=1, time_to_accept_p50_seconds=120,
              time_to_accept_p90_seconds=120, verification_carried=0.0, reasks=1,
              reasks_per_100_accepted=100.0, by_fact={"phone": fact(1, 100.0)},
              channel_switches=2, channel_switches_per_handoff=2.0,
              journey_steps_per_handoff=3.0, repeat_contacts=1, repeat_contact_share=1.0)
THU = figures(requested=1, expired=1)
SUN = figures(requested=3, accepted=2, cancelled=1, handed_back=1,
              time_to_accept_p50_seconds=100, time_to_accept_p90_seconds=900,
              verification_carried=0.0, reasks=3, reasks_per_100_accepted=150.0,
              reask_warnings=2, reask_warnings_heeded=1, reask_warnings_sent_anyway=1,
              by_fact={"email": fact(3, 150.0, warnings=2, heeded=1, sent_anyway=1)},
              channel_switches_per_handoff=0.0, journey_steps_per_handoff=1.0,
              repeat_contact_share=0.0, alerts_raised=1, alerts_acknowledged=1,
              time_to_acknowledge_p50_seconds=120, time_to_acknowledge_p90_seconds=120)
WEEK = figures(requested=8, accepted=5, expired=1, cancelled=2, handed_back=2, resolved=1,
               time_to_accept_p50_seconds=120, time_to_accept_p90_seconds=900,
               verified_at_accept=1, verification_carried=0.2, reasks=5,
               reasks_per_100_accepted=100.0, reask_warnings=4, reask_warnings_heeded=2,
               reask_warnings_sent_anyway=2,
               by_fact={"account": fact(1, 20.0, warnings=1, sent_anyway=1),
                        "email": fact(3, 60.0, warnings=3, heeded=2, sent_anyway=1),
                        "phone": fact(1, 20.0)},
               channel_switches=3, channel_switches_per_handoff=0.6,
               journey_steps_per_handoff=1.6, repeat_contacts=1, repeat_contact_share=0.2,
               alerts_raised=2, alerts_acknowledged=1, time_to_acknowledge_p50_seconds=120,
               time_to_acknowledge_p90_seconds=120)


async def test_a_supervisor_reads_the_weeks_effort_day_by_day(week: Week) -> None:
    result = await kpis(week, "?bucket=day")
    assert (result["tenant"], result["queue"], result["bucket"]) == ("acme", None, "day")
    assert (result["start"], result["end"]) == ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z")
    assert result["reask_warning_minutes"] == 5
    assert [b["start"] for b in result["buckets"]] == [
        f"2026-11-{d}T00:00:00Z" for d in range(16, 23)]
    assert [without_times(b) for b in result["buckets"]] == [
        MON, TUE, WED, THU, figures(), figures(), SUN]
    assert result["total"] == WEEK


async def test_the_last_24_hours_hour_by_hour(week: Week) -> None:
    result = await kpis(week)
    assert result["bucket"] == "hour"
    assert (result["start"], result["end"]) == ("2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z")
    hours = {int(b["start"][11:13]): without_times(b) for b in result["buckets"]}
    assert sorted(hours) == list(range(24))
    busy = {
        10: figures(requested=2, accepted=2, time_to_accept_p50_seconds=100,
                    time_to_accept_p90_seconds=900, verification_carried=0.0, reasks=1,
                    reasks_per_100_accepted=50.0, reask_warnings=1, reask_warnings_heeded=1,
                    by_fact={"email": fact(1, 50.0, warnings=1, heeded=1)},
                    channel_switches_per_handoff=0.0, journey_steps_per_handoff=1.0,
                    repeat_contact_share=0.0, alerts_raised=1, alerts_acknowledged=1,
                    time_to_acknowledge_p50_seconds=120, time_to_acknowledge_p90_seconds=120),
        # Finn's warning was shown at 11:58: sent anyway in its hour, the re-ask in the next.
        11: figures(handed_back=1, reask_warnings=1, reask_warnings_sent_anyway=1,
                    by_fact={"email": fact(0, None, warnings=1, sent_anyway=1)}),
        12: figures(reasks=1, by_fact={"email": fact(1, None)}),
        15: figures(reasks=1, by_fact={"email": fact(1, None)}),
        23: figures(requested=1, cancelled=1)}
    assert hours == {h: busy.get(h, figures()) for h in range(24)}
    assert result["total"] == SUN


async def test_each_queue_has_its_own_figures_and_a_reask_of_nobodys_customer_is_in_none(
        week: Week) -> None:
    billing = await kpis(week, "?bucket=day&queue=billing")
    fraud = await kpis(week, "?bucket=day&queue=fraud")
    assert billing["queue"] == "billing"
    assert billing["total"] == figures(
        requested=6, accepted=3, expired=1, cancelled=2, handed_back=2,
        time_to_accept_p50_seconds=120, time_to_accept_p90_seconds=240, verified_at_accept=1,
        verification_carried=0.3333, reasks=3, reasks_per_100_accepted=100.0,
        reask_warnings=2, reask_warnings_heeded=1, reask_warnings_sent_anyway=1,
        by_fact={"account": fact(1, 33.3333, warnings=1, sent_anyway=1),
                 "email": fact(1, 33.3333, warnings=1, heeded=1), "phone": fact(1, 33.3333)},
        channel_switches=3, channel_switches_per_handoff=1.0, journey_steps_per_handoff=2.0,
        repeat_contacts=1, repeat_contact_share=0.3333, alerts_raised=1, alerts_acknowledged=1,
        time_to_acknowledge_p50_seconds=120, time_to_acknowledge_p90_seconds=120)
    assert fraud["total"] == figures(
        requested=2, accepted=2, resolved=1, time_to_accept_p50_seconds=30,
        time_to_accept_p90_seconds=900, verification_carried=0.0, reasks=1,
        reasks_per_100_accepted=50.0, reask_warnings=2, reask_warnings_heeded=1,
        reask_warnings_sent_anyway=1,
        by_fact={"email": fact(1, 50.0, warnings=2, heeded=1, sent_anyway=1)},
        channel_switches_per_handoff=0.0, journey_steps_per_handoff=1.0,
        repeat_contact_share=0.0, alerts_raised=1)
    # Hana's re-ask belongs to no queue: it is in the tenant's total only.
    assert WEEK["reasks"] == billing["total"]["reasks"] + fraud["total"]["reasks"] + 1
    assert (await kpis(week, "?bucket=day&queue=returns"))["total"] == figures()


async def test_an_explicit_range_covers_the_buckets_it_overlaps(week: Week) -> None:
    result = await kpis(week, "?bucket=day&from=2026-11-17T12:00:00Z&to=2026-11-18T09:00:00Z")
    assert (result["start"], result["end"]) == ("2026-11-17T00:00:00Z", "2026-11-19T00:00:00Z")
    assert [without_times(b) for b in result["buckets"]] == [TUE, WED]
    hours = await kpis(week, "?from=2026-11-16T09:30:00%2B00:00&to=2026-11-16T15:00:00")
    assert [b["start"][11:13] for b in hours["buckets"]] == [
        "09", "10", "11", "12", "13", "14"]
    assert hours["total"] == MON


async def test_another_tenant_sees_only_its_own_figures(week: Week) -> None:
    theirs = await kpis(week, "?bucket=day", tenant="globex")
    assert theirs["tenant"] == "globex"
    assert theirs["total"] == figures(requested=1)
    assert without_times(theirs["buckets"][-1]) == figures(requested=1)


async def test_an_admin_reads_them_too_and_every_other_role_is_forbidden(week: Week) -> None:
    assert (await kpis(week, "?bucket=day", role="admin"))["total"] == WEEK
    for role in ("bot", "ivr", "agent"):
        answer = await call(week.client, "GET", "/v1/kpis", headers=week.keys(role))
        assert role in assert_problem(answer, 403)["detail"]


@pytest.mark.parametrize(("query", "field"), [
    ("?from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z", "from"),
    ("?from=2026-11-20T00:00:00Z&to=2026-11-20T00:00:00Z", "from"),
    ("?from=2999-01-01T00:00:00Z", "from"),  # after now
    ("?from=2026-11-01T00:00:00Z&to=2026-11-09T01:00:00Z", "from"),
    ("?bucket=day&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z", "from"),
    ("?from=yesterday", "from"),
    ("?to=2026-13-01T00:00:00Z", "to"),
    ("?from=0001-01-01T00:30:00%2B01:00&to=0001-01-02T00:00:00Z", "from"),
    ("?from=9999-12-31T22:00:00Z&to=9999-12-31T23:59:59-01:00", "from"),
    ("?bucket=day&to=9999-12-31T23:59:59Z", "to"),
    ("?bucket=week", "bucket"),
    ("?queue=Billing!", "queue"),
    ("?queue=" + "q" * 65, "queue"),
])
async def test_bad_input_is_422_problem_json_naming_the_parameter(
        client: Client, keys: Keys, query: str, field: str) -> None:
    answer = await call(client, "GET", f"/v1/kpis{query}", headers=keys("supervisor"))
    problem = assert_problem(answer, 422)
    assert problem["errors"][0]["loc"] == ["query", field]


async def test_a_replayed_accept_counts_its_figures_once(week: Week) -> None:
    t = Traffic(week.client, week.keys, week.clock)
    t.clock.at(6, "23:40")
    await t.chat("ivy", "web-i")
    ivy = await t.request("ivy", "web-i", "billing")
    t.clock.at(6, "23:41")
    await t.accept(ivy, "agent-5")
    await t.accept(ivy, "agent-5")  # the panel retried: the same agent wins again
    t.clock.moment = READ_AT
    hour = (await kpis(week))["buckets"][-1]
    assert (hour["accepted"], hour["journey_steps_per_handoff"]) == (1, 1.0)


async def test_an_accept_on_a_server_that_forgot_its_scripts_still_counts_once(
        week: Week) -> None:
    """The accept's figures ride its audit pipeline by script digest; a restarted server knows
    no scripts, so that one accept loads it and counts, once."""
    t = Traffic(week.client, week.keys, week.clock)
    t.clock.at(6, "23:40")
    await t.chat("ivy", "web-i")
    ivy = await t.request("ivy", "web-i", "billing")
    await week.client.app[DEPS].store.client.script_flush()
    t.clock.at(6, "23:41")
    await t.accept(ivy, "agent-5")
    await t.accept(ivy, "agent-5")
    t.clock.moment = READ_AT
    hour = (await kpis(week))["buckets"][-1]
    assert (hour["accepted"], hour["journey_steps_per_handoff"]) == (1, 1.0)


async def test_the_counters_expire_with_the_tenants_retention(
        week: Week, redis_sync: redis.Redis) -> None:
    names = [n.decode() for n in redis_sync.scan_iter(match=KPI_KEYS, count=1000)]
    assert any(re.search(r":kpi:h\d+$", n) for n in names)
    assert any(re.search(r":kpi:d\d+:w:billing$", n) for n in names)
    retention = week.client.app[DEPS].retention_ms("acme")
    for name in names:
        assert 0 < redis_sync.pttl(name) <= retention, name


async def test_counters_follow_a_tenants_own_retention(
        aiohttp_client: Any, settings: Settings, redis_sync: redis.Redis) -> None:
    clock = Clock(MONDAY)
    app = create_app(settings.model_copy(update={"tenant_retention_days": {"acme": 2}}),
                     clock=clock)
    client: Client = await aiohttp_client(app)
    made = Keys()
    for role in ("bot", "agent"):
        made.secrets[("acme", role)], _ = await apikeys.create(
            client.app[DEPS].store, tenant="acme", role=role, now_ms=clock())
    t = Traffic(client, made, clock)
    t.clock.at(0, "09:00")
    await t.chat("ana", "web-a")
    await t.accept(await t.request("ana", "web-a", "billing"), "agent-1")
    names = [n.decode() for n in redis_sync.scan_iter(match=KPI_KEYS, count=1000)]
    assert len(names) == 7  # hour and day counters, 4 wait histograms, Ana's queue
    for name in names:
        assert 2 * 86_400_000 - 60_000 < redis_sync.pttl(name) <= 2 * 86_400_000, name


# -- the same figures in /metrics ---------------------------------------------------------------


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics whose tenant label is acme, by name and labels."""
    text = await (await client.get("/metrics")).text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("tenant") == "acme":
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_the_same_figures_are_prometheus_metrics_labelled_by_tenant_and_queue(
        aiohttp_client: Any, settings: Settings) -> None:
    traffic = await fresh_server(aiohttp_client, settings)
    before = await scrape(traffic.client)
    await play_week(traffic)
    after = await scrape(traffic.client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({"tenant": "acme", **labels}.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    events = {(q, e): grew("handoff_handoffs_total", queue=q, event=e)
              for q in ("billing", "fraud") for e in (
                  "requested", "accepted", "expired", "cancelled", "handed_back", "resolved")}
    assert {k: v for k, v in events.items() if v} == {
        ("billing", "requested"): 6, ("billing", "accepted"): 3, ("billing", "expired"): 1,
        ("billing", "cancelled"): 2, ("billing", "handed_back"): 2, ("fraud", "requested"): 2,
        ("fraud", "accepted"): 2, ("fraud", "resolved"): 1}
    waits = "handoff_handoff_time_to_accept_seconds"
    assert (grew(f"{waits}_count", queue="billing"), grew(f"{waits}_sum", queue="billing")) == (
        3, pytest.approx(460))
    assert (grew(f"{waits}_count", queue="fraud"), grew(f"{waits}_sum", queue="fraud")) == (
        2, pytest.approx(930))
    per_queue = {
        "handoff_accepts_verified_total": {"billing": 1},
        "handoff_channel_switches_total": {"billing": 3},
        "handoff_journey_steps_total": {"billing": 6, "fraud": 2},
        "handoff_repeat_contacts_total": {"billing": 1},
        "handoff_queue_reasks_total": {"billing": 3, "fraud": 1, "_none": 1},
        "handoff_reask_warnings_total": {"billing": 2, "fraud": 2},
        "handoff_reask_warnings_sent_anyway_total": {"billing": 1, "fraud": 1}}
    for name, expected in per_queue.items():
        seen = {q: grew(name, queue=q) for q in ("billing", "fraud", "_none")}
        assert {q: n for q, n in seen.items() if n} == expected, name
    assert {f: grew("handoff_reasks_total", fact=f) for f in ("account", "email", "phone")} == {
        "account": 1, "email": 3, "phone": 1}
    assert grew("handoff_alerts_total") == 2
    acks = "handoff_alert_time_to_acknowledge_seconds"
    # Other tests in this process fed the histogram first: the difference of two float sums.
    assert (grew(f"{acks}_count"), grew(f"{acks}_sum")) == (1, pytest.approx(120))
    # Cleo's alert is still open.
    assert after[("handoff_alerts_open", (("tenant", "acme"),))] == 1
    assert all(len(labels) <= 3 for _, labels in after)  # tenant, queue, and one of a fixed set


async def test_only_an_agents_check_opens_a_warning(week: Week) -> None:
    week.clock.at(6, "23:45")
    eve = week.customers["eve"]
    for role in ("bot", "ivr"):
        checked = await ok(week.client, "POST", f"/v1/customers/{eve}/reask-check",
                           week.keys(role), {"text": "Can I have your email address?"})
        assert [r["topic"] for r in checked["reasks"]] == ["email"]
    assert (await kpis(week))["buckets"][-1]["reask_warnings"] == 0
    checked = await ok(week.client, "POST", f"/v1/customers/{eve}/reask-check",
                       week.keys("agent"), {"text": "Can I have your email address?"})
    assert (await kpis(week))["buckets"][-1]["reask_warnings"] == 1


async def test_erasing_a_customer_forgets_what_the_figures_kept_of_them_and_their_alerts(
        week: Week, redis_sync: redis.Redis) -> None:
    store = week.client.app[DEPS].store
    eve = week.customers["eve"]
    assert redis_sync.exists(store.kpis.customer_key("acme", eve))
    before = (await kpis(week, "?bucket=day"))["total"]
    await ok(week.client, "DELETE", f"/v1/customers/{eve}", week.keys("admin"))
    assert not redis_sync.exists(store.kpis.customer_key("acme", eve))
    # Her alert went with her; every other count stays.
    after = (await kpis(week, "?bucket=day"))["total"]
    assert after == before | {"alerts_raised": 1, "alerts_acknowledged": 0,
                              "time_to_acknowledge_p50_seconds": None,
                              "time_to_acknowledge_p90_seconds": None}
