"""The brief as compact text for a model's context window, never longer than `MAX_CHARS`.

An AI agent reads this before it speaks, so it leads with what changes what it may say: what is
verified (how, how long ago, until when), how the last conversation with a person ended (the
agent's note), what not to ask, why they are here, the facts with where they came from, the
other identities, the journey, flags, the hand-offs, then the last turns. Ages are counted from
the brief's own `generated_at`, so the same brief always renders the same text.

Bounded by construction: each item is cut to a fixed length, lists keep a fixed number of items,
everything above the turns stops at `HEAD_CHARS` (most important first), and when the whole is
still over `MAX_CHARS` the oldest turns go first (the newest turn is what the agent answers).
"""

from __future__ import annotations

from datetime import datetime

from schemas.brief import Brief

MAX_CHARS = 4000
# Everything above the turns gets at most this much, so the newest turns always fit.
HEAD_CHARS = 3000
TURN_CHARS = 240
VALUE_CHARS = 120
MAX_ITEMS = 20
LINE_CHARS = 800
CUT = " [...]"
MORE = "[more in the structured brief]"


def _clip(text: object, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - len(CUT)] + CUT


def _age(then: datetime, now: datetime) -> str:
    seconds = (now - then).total_seconds()
    if abs(seconds) < 60:  # clocks of different systems differ by a few seconds
        return "just now"
    return _span(seconds) + " ago" if seconds > 0 else "in " + _span(-seconds)


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"


def _head(brief: Brief) -> list[str]:
    now = brief.generated_at
    lines = [f"Customer {brief.customer.id}"
             + (f" (merged from {', '.join(brief.customer.merged)})"
                if brief.customer.merged else "")]
    for v in brief.verifications[:MAX_ITEMS]:
        ident = f"{v.identity.kind} {_clip(v.identity.value, VALUE_CHARS)}"
        if v.expired:
            lines.append(f"EXPIRED verification: {ident} by {v.method}, "
                         f"lapsed {_age(v.expires_at, now)}")
        else:
            left = _span((v.expires_at - now).total_seconds())
            lines.append(f"VERIFIED: {ident} by {v.method} ({v.level}) on {v.channel or '?'} "
                         f"{_age(v.verified_at, now)}, valid {left} more")
    contact = brief.last_human_contact
    if contact is not None:
        how = ("handed back" + (f" to {contact.handed_back_to}" if contact.handed_back_to else "")
               if contact.status == "handed_back" else contact.status)
        lines.append(f"LAST HUMAN CONTACT: agent {contact.agent_id} {how}, outcome "
                     f"{contact.outcome}" + (f", {_age(contact.at, now)}" if contact.at else "")
                     + (f". Their note: {_clip(contact.note, TURN_CHARS * 2)}"
                        if contact.note else ""))
    lines.append(_clip("Do not ask for: " + (", ".join(brief.do_not_ask) or "-"), LINE_CHARS))
    if brief.summary:
        lines.append("Summary: " + _clip(brief.summary, TURN_CHARS * 2))
    for key, fact in list(brief.facts.items())[:MAX_ITEMS]:
        lines.append(f"Fact {key} = {_clip(fact.value, VALUE_CHARS)} "
                     f"({'verified' if fact.verified else 'said'} on {fact.channel or '?'}, "
                     f"{_age(fact.at, now)})")
    others = [i for i in brief.customer.identities if not i.verified][:MAX_ITEMS]
    if others:
        lines.append(_clip("Known: " + "; ".join(
            f"{i.kind} {_clip(i.value, VALUE_CHARS)} "
            f"({'linked' if i.linked else 'stated, not verified'}"
            f"{' on ' + i.channel if i.channel else ''})" for i in others), LINE_CHARS))
    if brief.journey:
        lines.append(_clip("Journey: " + " -> ".join(
            f"{j.channel} {_clip(j.conversation_id, 40)} {_age(j.started_at, now)}"
            for j in brief.journey[-MAX_ITEMS:]), LINE_CHARS))
    if brief.flags:
        lines.append(_clip("Flags: " + "; ".join(
            f"{f.category or f.kind}: {_clip(f.term, 60)}" + (f" x{f.count}" if f.count > 1 else "")
            for f in brief.flags[:MAX_ITEMS]), LINE_CHARS))
    for h in brief.handoffs[:5]:
        lines.append(f"Hand-off {h.id} {h.status} queue {h.queue} priority {h.priority} "
                     f"reason {h.reason}" + (f" agent {h.agent_id}" if h.agent_id else ""))
    return lines


def _turn(brief: Brief, index: int) -> str:
    t = brief.turns[index]
    return (f"  [{_age(t.ts, brief.generated_at)}] {t.channel} {t.role}: "
            f"{_clip(t.text, TURN_CHARS)}")


def _bounded_head(brief: Brief) -> str:
    """The lines above the turns, most important first, within `HEAD_CHARS`."""
    kept: list[str] = []
    used = 0
    for line in _head(brief):
        if used + len(line) + 1 > HEAD_CHARS - len(MORE) - 1:
            kept.append(MORE)
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def brief_text(brief: Brief) -> str:
    """The brief in at most `MAX_CHARS` characters (see the module's docstring)."""
    head = _bounded_head(brief)
    turns = [_turn(brief, i) for i in range(len(brief.turns))]
    while turns:
        label = f"Last {len(turns)} turns, oldest first:"
        text = "\n".join([head, label, *turns])
        if len(text) <= MAX_CHARS:
            return text
        turns.pop(0)
    text = head + ("\nLast turns: none fit; read the transcript" if brief.turns else "")
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - len(CUT)] + CUT
