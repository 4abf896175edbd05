"""Card numbers (Luhn-valid PANs) masked to their last four digits before anything is stored.

A card number is 13 to 19 decimal digits of any script (`4111…`, `٤١١١…`, `４１１１…`), in
groups joined by separators a person or a keyboard puts between them: any whitespace however
long (no-break and narrow no-break spaces included), invisible format characters (zero-width
space and joiners, word joiner, byte order mark, soft hyphen), dashes, dots and slashes, also
percent-encoded (`%20`, `%C2%A0`: a URL quoted in a log line). What stands before or after it
does not matter (`ref-4111…`, `card:4111…x`). Commas, colons and letters end a run of groups,
so lists of times or amounts are not read as one number.

The cost is linear in the text: each run of digit groups is read once, and the candidates that
end at each group (runs of whole groups holding 13 to 19 digits, at most seven) are checked in
one `find` over Luhn prefix sums.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import accumulate, repeat
from operator import mod

MIN_DIGITS, MAX_DIGITS = 13, 19
MASK = "**** **** **** "

# Whitespace (\s is Unicode-aware), invisible format characters, dashes and the minus sign,
# dots (Arabic decimal and thousands separators too), slashes.
SEPARATORS = (r"\s\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
              r"\u2066-\u206f\ufeff"
              r"\-\u058a\u05be\u1400\u1806\u2010-\u2015\u2212\u2e17\u2e1a\u2e3a\u2e3b\u2e40"
              r"\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d"
              r".\u00b7\u066b\u066c\u2024\u2027\u3002\u30fb\uff0e\uff61"
              r"/\\\u2044\u2215\uff0f\uff3c")
# A run of digits and separators from a digit to a digit, long enough to hold 13 digits,
# tried only where a group of digits starts. An attempt that fails started within 12 characters
# of the stretch's last digit, so at most 12 attempts read the same stretch: linear, however the
# text is built. (Leading with `\d` lets the engine skip text without digits at C speed.)
_RUN = re.compile(rf"\d(?<!\d\d)[\d{SEPARATORS}]{{{MIN_DIGITS - 2},}}\d")
_SEPARATED = re.compile(rf"([{SEPARATORS}]+)")
# The same where the text holds a `%`: separators may be percent-encoded, as in a URL a log
# line quotes ("4111%201111%201111%201111"); a run never starts inside an escape.
_ESCAPE = r"%[0-9A-Fa-f]{2}"
_RUN_ESCAPED = re.compile(rf"\d(?<!%\d)(?<!%[0-9A-Fa-f]\d)"
                          rf"(?:[\d{SEPARATORS}]|{_ESCAPE}){{{MIN_DIGITS - 2},}}\d")
_SEPARATED_ESCAPED = re.compile(rf"((?:[{SEPARATORS}]|{_ESCAPE})+)")
_DIGIT = re.compile(r"\d")
_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))
# Luhn doubles every second digit from the right and adds the digits of the product.
_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_FLAG = bytes.maketrans(b"01", b"\x00\x01")
# A residue at a group's start (16 added) as itself, anything else as 0xff, which none equals.
_AT_START = bytes(code - 16 if 16 <= code < 26 else 0xFF for code in range(256))


class _Decimals(dict[int, int]):
    """A `str.translate` table from every decimal digit to its ASCII digit, filled as met."""

    def __missing__(self, code: int) -> int:
        ascii_digit = 48 + unicodedata.decimal(chr(code))
        self[code] = ascii_digit
        return ascii_digit


_DECIMALS = _Decimals()


def luhn_valid(digits: str) -> bool:
    """Whether the ASCII digits pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def has_digit(text: str) -> bool:
    """Whether `text` holds any decimal digit, of any script."""
    return _DIGIT.search(text) is not None


def card_numbers(text: str) -> list[tuple[int, int, str]]:
    """Where `text` holds card numbers: (start, end, last four digits in ASCII) of each.

    Digit groups that surround a card number (a security code typed after it) stay outside it;
    card numbers that share groups (overlapping Luhn-valid runs) are reported as one, so no
    reading of the groups is left showing more than four digits of any of them.
    """
    found = _find(text, _RUN, _SEPARATED)
    if "%" in text:
        # Read both ways: a `%` may start an escape, or end a number ("100%4111 1111 ...").
        found = _union(found, _find(text, _RUN_ESCAPED, _SEPARATED_ESCAPED))
    return found


def _find(text: str, runs: re.Pattern[str], separated: re.Pattern[str]
          ) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    for run in runs.finditer(text):
        found.extend(_in_run(text, run.start(), run.end(), separated))
    return found


def _union(first: list[tuple[int, int, str]], second: list[tuple[int, int, str]]
           ) -> list[tuple[int, int, str]]:
    """Both readings' card numbers; overlapping ones as one (the last four of the later end)."""
    merged: list[tuple[int, int, str]] = []
    for start, end, last_four in sorted(first + second):
        if merged and start < merged[-1][1]:
            previous = merged.pop()
            start, (end, last_four) = previous[0], max((previous[1], previous[2]),
                                                       (end, last_four))
        merged.append((start, end, last_four))
    return merged


def _in_run(text: str, begin: int, end: int, separated: re.Pattern[str]
            ) -> list[tuple[int, int, str]]:
    # Groups and the separators between them, alternately: [group, sep, group, ..., group].
    parts = separated.split(text[begin:end])
    digits = "".join(parts[::2])
    count = len(digits)
    if count < MIN_DIGITS:
        return []
    if not digits.isascii():
        digits = digits.translate(_DECIMALS)
    if count <= MAX_DIGITS and luhn_valid(digits):
        return [(begin, end, digits[-4:])]
    if len(parts) == 1:
        return []
    offsets = list(accumulate(map(len, parts), initial=begin))
    ends = list(accumulate(map(len, parts[::2])))
    # 1 where a group starts, 0 elsewhere, one byte per digit: "41|11" -> "00|00" -> "0010".
    starts = _DIGIT.sub("0", "|".join(parts[::2])).replace("|0", "1").encode()
    return [(offsets[2 * first], offsets[2 * last + 1], digits[ends[last] - 4:ends[last]])
            for first, last in _valid_spans(digits, ends, b"1" + starts[1:] + b"0")]


def _valid_spans(digits: str, ends: list[int], starts: bytes) -> list[tuple[int, int]]:
    """(first, last) group of each maximal chain of overlapping Luhn-valid runs of whole groups
    (13 to 19 digits); `ends[g]` is the digit count up to the end of group `g`, and `starts`
    holds `1` where a group starts and `0` elsewhere, a byte per digit and one past the last."""
    flags = starts.translate(_FLAG)
    group_of = list(accumulate(flags))  # at a group's first digit, its number plus one
    raw = digits.encode()
    plain, doubled = raw.translate(_PLAIN), raw.translate(_DOUBLED)
    # The Luhn sum of digits[a:b] is a difference of prefix sums: of `even` when its last digit
    # (b - 1) sits at an even index (odd indices doubled), else of `odd`. A run is valid when
    # the two prefix sums agree modulo 10; with the residues at group starts in a byte string
    # (0xff elsewhere), one `find` gives the earliest start, so the longest valid run, that
    # ends at a group's end.
    even, odd = bytearray(plain), bytearray(doubled)
    even[1::2], odd[1::2] = doubled[1::2], plain[1::2]
    by_even, by_odd = (bytes(map(mod, accumulate(sums, initial=0), repeat(10)))
                       for sums in (even, odd))
    # Each residue plus 16 where a group starts (one addition of big integers adds every byte
    # at once, none carries), then everything else made 0xff.
    size, marks = len(flags), int.from_bytes(flags, "big") * 16
    at_even, at_odd = (
        (int.from_bytes(by, "big") + marks).to_bytes(size, "big").translate(_AT_START)
        for by in (by_even, by_odd))
    # One `find` per group's end, run by `map` rather than a loop of Python statements.
    found = list(map(
        bytes.find,
        [at_even if stop & 1 else at_odd for stop in ends],
        [by_even[stop] if stop & 1 else by_odd[stop] for stop in ends],
        [stop - MAX_DIGITS if stop > MAX_DIGITS else 0 for stop in ends],
        [stop - MIN_DIGITS + 1 if stop >= MIN_DIGITS else 0 for stop in ends]))
    lasts = [last for last, start in enumerate(found) if start >= 0]
    if not lasts:
        return []
    firsts = [group_of[found[last]] - 1 for last in lasts]
    # Right to left, the earliest group any valid run from here on reaches back to: a chain of
    # overlapping runs ends where no later run reaches back into its last group.
    reach = list(accumulate(reversed(firsts), min))[::-1]
    chain_ends = [k for k in range(len(lasts) - 1) if reach[k + 1] > lasts[k]]
    return [(reach[begin], lasts[end]) for begin, end in
            zip([0, *(k + 1 for k in chain_ends)], [*chain_ends, len(lasts) - 1], strict=True)]


def has_card_number(text: str) -> bool:
    """Whether `text` holds a card number (see `card_numbers`)."""
    return bool(card_numbers(text))


def mask_text(text: str) -> str:
    """Replace every card number in `text` with `**** **** **** 1234` (its last four)."""
    found = card_numbers(text)
    if not found:
        return text
    parts: list[str] = []
    done = 0
    for start, end, last_four in found:
        parts += (text[done:start], MASK, last_four)
        done = end
    parts.append(text[done:])
    return "".join(parts)
