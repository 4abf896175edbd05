"""How the access line shows the path of a request that matched no route.

A matched request is logged by its route template (`/v1/customers/{ref}/context`). One that
matched nothing has no template, yet the operator needs to see what was asked for: a stale link,
a client with a typo in a path, a scanner. Such a path is whatever the caller sent, and may hold a
customer's identity (`/v1/customers/account:88812345/contxt`), a card number or an API key, so
the access line gets a sanitised form: no query string, no identity value, no run of five or
more digits, no credential, no control character, at most 120 characters.
"""

from __future__ import annotations

import re

from handoff.kernel.logs import redact

MAX_LENGTH = 120
# What the service hands out itself (`ho_01M8...`, `cus_01M8...`): they name nothing personal.
OWN_ID = re.compile(r"^[a-z]{2,4}_[0-9A-HJKMNP-TV-Z]{26}$")
KIND = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
DIGITS = re.compile(r"\d{5,}")
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _segment(segment: str) -> str:
    if OWN_ID.match(segment):
        return segment
    kind, colon, _ = segment.partition(":")
    if colon:  # an identity ref, `kind:value`: the kind says what was asked, the value is theirs
        return f"{kind if KIND.match(kind) else '*'}:*"
    if "@" in segment:
        return "*@*"
    return DIGITS.sub("*", segment)


def shown_path(path: str) -> str:
    """`path` (without its query string) as the access line may show it."""
    # Credentials and card numbers first, while a key or a card is still whole (a request line
    # is bounded by the HTTP parser, so this is too).
    cleaned = UNPRINTABLE.sub("?", redact(path))
    shown = "/".join(_segment(s) for s in cleaned.split("/"))
    return shown if len(shown) <= MAX_LENGTH else shown[:MAX_LENGTH - 1] + "…"
