"""Card numbers as people and machines write them, and looking for them the way an auditor would:
in every Redis key (each read by its type, msgpack unpacked), in the append-only file on disk,
and in log lines, whatever script their digits are in and whatever joins them."""

from __future__ import annotations

import json
import random
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis

from tests.redis_peek import blobs, snapshot
from tests.test_data_protection import luhn

# -- card numbers ------------------------------------------------------------------------------


def random_pan(length: int = 16, prefix: str | None = None) -> str:
    """A fresh Luhn-valid card number: nobody else's test can have written it."""
    head = prefix or random.choice(["4", "51", "55", "37", "6011", "35"])
    body = head + "".join(random.choices(string.digits, k=length - len(head) - 1))
    return next(body + check for check in string.digits if luhn(body + check))


def grouped(pan: str, separator: str, size: int = 4) -> str:
    return separator.join(pan[i:i + size] for i in range(0, len(pan), size))


def in_script(pan: str, zero: str) -> str:
    """The digits of another script (`zero` is its digit zero: U+0660, U+0966, U+FF10)."""
    return "".join(chr(ord(zero) + int(d)) for d in pan)


def masked(pan: str) -> str:
    return f"**** **** **** {pan[-4:]}"


@dataclass(frozen=True)
class Spelling:
    """One way of writing a card number; `slug` when it is also a valid queue name."""

    name: str
    write: Callable[[str], str]
    slug: bool = False


SPELLINGS = [
    Spelling("dots", lambda p: grouped(p, "."), slug=True),
    Spelling("slashes", lambda p: grouped(p, "/")),
    Spelling("two spaces", lambda p: grouped(p, "  ")),
    Spelling("five spaces", lambda p: grouped(p, "     ")),
    Spelling("no-break spaces", lambda p: grouped(p, "\u00a0")),
    Spelling("narrow no-break spaces", lambda p: grouped(p, "\u202f")),
    Spelling("a zero-width space after every digit", lambda p: grouped(p, "\u200b", 1)),
    Spelling("zero-width joiners", lambda p: grouped(p, "\u200d")),
    Spelling("word joiners", lambda p: grouped(p, "\u2060")),
    Spelling("byte order marks", lambda p: grouped(p, "\ufeff")),
    Spelling("Arabic-Indic digits", lambda p: in_script(p, "\u0660")),
    Spelling("Devanagari digits in groups", lambda p: grouped(in_script(p, "\u0966"), " ")),
    Spelling("full-width digits", lambda p: in_script(p, "\uff10")),
    Spelling("glued to a prefix", lambda p: f"ref-{p}", slug=True),
    Spelling("glued on both sides", lambda p: f"card:{p}x"),
    Spelling("followed by its security code",
             lambda p: f"{grouped(p, ' ')} {random.randint(100, 999)}"),
    Spelling("plain", lambda p: p, slug=True),
]


# -- finding them ------------------------------------------------------------------------------

# Whatever is not a letter or a digit, between two digits: what a spelling may put there.
_BETWEEN_DIGITS = re.compile(r"(?<=\d)[^\w]+(?=\d)")
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")


def digit_view(text: str) -> str:
    """`text` with every decimal digit as its ASCII digit and whatever joins digits removed:
    a card number in any of the spellings above reads as its plain digits here."""
    ascii_digits = _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)
    return _BETWEEN_DIGITS.sub("", ascii_digits)


def _decoded(blob: bytes) -> Iterator[str]:
    """Raw bytes as text both ways (UTF-8 for other scripts' digits, Latin-1 for the rest),
    and unpacked when they are msgpack: a number stored as a msgpack integer leaks too."""
    yield blob.decode("utf-8", errors="replace")
    yield blob.decode("latin-1")
    try:
        value = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except Exception:  # not msgpack: the raw bytes speak for themselves
        return
    yield json.dumps(value, default=repr, ensure_ascii=False)


def store_text(client: redis.Redis) -> tuple[str, int]:
    """Every key name and every value of every type as readable text, and how many keys."""
    contents = snapshot(client, drop_fields=frozenset())
    parts = [text for key, (_, value) in contents.items()
             for blob in (key, *blobs(value)) for text in _decoded(blob)]
    return "\n".join(parts), len(contents)


def numeric_forms(pan: str) -> list[bytes]:
    """How msgpack writes the card number as a number (integer and float)."""
    return [msgpack.packb(int(pan)), msgpack.packb(float(pan))]


def leaked(pans: Iterable[str], text: str, raw: bytes = b"") -> list[str]:
    """The card numbers (as `…last four`) found in full in `text` or `raw`, however spelled."""
    view = digit_view(text)
    return [f"…{pan[-4:]}" for pan in pans
            if pan in view or any(form in raw for form in numeric_forms(pan))]


class AppendOnlyFile:
    """What Redis appends to its AOF from now on (every file of its AOF directory, on every
    node of a cluster), read back from disk."""

    def __init__(self, directories: list[Path]) -> None:
        # Redis 7 and later keep the AOF as a folder of files listed by a manifest.
        self.folders = [sub for d in directories for sub in d.iterdir()
                        if sub.is_dir() and any(f.suffix == ".manifest" for f in sub.iterdir())]
        assert self.folders, f"no append-only folder in {directories}: is appendonly on?"
        self.start = self._sizes()

    def _sizes(self) -> dict[Path, int]:
        return {f: f.stat().st_size for folder in self.folders if folder.is_dir()
                for f in folder.iterdir() if f.is_file()}

    def appended(self) -> bytes:
        """The bytes written since this was made (a rewritten file is read whole)."""
        now = self._sizes()
        assert now, f"no append-only file in {self.folders}"
        out = []
        for path, size in now.items():
            seen = self.start.get(path, 0)
            with path.open("rb") as f:
                f.seek(seen if seen <= size else 0)
                out.append(f.read())
        return b"".join(out)


def aof_directories(server: Any) -> list[Path]:
    """The data directory of the test Redis, or of each node of the test cluster."""
    nodes = getattr(server, "nodes", None)
    return [n.directory for n in nodes] if nodes else [server.directory]
