"""Briefs and events as text for a terminal: what `handoff demo`, `context` and `tail` print."""

from __future__ import annotations

from datetime import UTC, datetime

from handoff.client.sse import Event
from schemas.brief import Brief
from schemas.handoffs import Handoff


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M") if moment else "--:--"


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def handoff_line(handoff: Handoff) -> str:
    line = (f"Hand-off {handoff.id}  queue {handoff.queue}  priority {handoff.priority}  "
            f"reason {handoff.reason}  {handoff.status}")
    return line + (f" by {handoff.agent_id}" if handoff.agent_id else "")


def brief_text(brief: Brief, *, now: datetime) -> str:
    """Who, verified how long ago and until when, what not to ask, facts, journey, flags and
    the last turns, in the order an agent reads them."""
    verified = {(v.identity.kind, v.identity.value): v for v in brief.verifications
                if not v.expired}
    lines = [f"Customer {brief.customer.id}"]
    for ident in brief.customer.identities:
        v = verified.get((ident.kind, ident.value))
        if v is not None:
            left = (v.expires_at - now).total_seconds()
            age = (now - v.verified_at).total_seconds()
            how = (f"VERIFIED by {v.method} ({v.level}) on {v.channel or '?'} at "
                   f"{_clock(v.verified_at)} ({'just now' if age < 60 else _span(age) + ' ago'}"
                   f"), valid until {_clock(v.expires_at)} "
                   + (f"({_span(left)} left)" if left > 0 else "(expired)"))
        else:
            how = ("linked" if ident.linked else "stated, not verified") + \
                  f" on {ident.channel or '?'}"
        lines.append(f"  {ident.kind:<8} {ident.value:<22} {how}")
    expired = [v for v in brief.verifications if v.expired]
    lines += [f"  {v.identity.kind:<8} {v.identity.value:<22} verification by {v.method} "
              f"expired at {_clock(v.expires_at)}" for v in expired]
    if brief.facts:
        lines += ["", "Facts"]
        for key, fact in brief.facts.items():
            lines.append(f"  {key:<14} {fact.value!s:<20} "
                         f"{'verified' if fact.verified else 'said'} on {fact.channel or '?'} "
                         f"at {_clock(fact.at)}")
    lines += ["", "Do not ask for: " + (", ".join(brief.do_not_ask) or "-")]
    journey = "  ->  ".join(f"{j.channel} {j.conversation_id} {_clock(j.started_at)}"
                            for j in brief.journey)
    lines.append(f"Journey: {journey or '-'}")
    if brief.summary:
        lines.append(f"Summary: {brief.summary}")
    if brief.flags:
        lines.append("Flags: " + "; ".join(
            f"{f.category or f.kind}: {f.term}" + (f" (turn {f.turn_id})" if f.turn_id else "")
            for f in brief.flags))
    open_handoffs = [h for h in brief.handoffs if h.status in ("pending", "accepted")]
    if open_handoffs:
        lines += ["", "Open hand-offs"] + [f"  {handoff_line(h)}" for h in open_handoffs]
    lines += ["", "What they already said"]
    lines += [f"  {_clock(t.ts)} {t.channel:<5} {t.role:<8} {t.text}" for t in brief.turns]
    return "\n".join(lines)


def event_line(event: Event) -> str:
    """One event on one line: when, what, and the gist of the changed record."""
    record = event.record
    when = "--:--:--"
    stamp = str(record.get("ts") or "")
    if len(stamp) >= 19:
        when = stamp[11:19]  # a turn: when it was said
    elif event.id and event.id.split("-")[0].isdigit():
        # Anything else: when the service recorded it (a stream id starts with its ms time).
        when = datetime.fromtimestamp(int(event.id.split("-")[0]) / 1000, UTC).strftime(
            "%H:%M:%S")
    if event.type == "turn.appended":
        gist = (f"{record.get('channel', '?')} {record.get('role', '?')}: "
                f"{record.get('text', '')}")
    elif event.type == "fact.set":
        gist = f"{record.get('key')} = {record.get('value')}"
    elif event.type == "identity.verified":
        ident = record.get("identity") or {}
        gist = f"{ident.get('kind')} {ident.get('value')} by {record.get('method')}"
    elif event.type.startswith("handoff."):
        gist = (f"{record.get('id')} queue {record.get('queue')} priority "
                f"{record.get('priority')} {record.get('status')}"
                + (f" by {record['agent_id']}" if record.get("agent_id") else ""))
    else:
        gist = ", ".join(f"{k}={v}" for k, v in record.items() if not isinstance(v, dict))
    customer = f" {event.customer_id}" if event.customer_id else ""
    return f"{when} {event.type:<18}{customer}  {gist}"
