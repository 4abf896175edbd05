"""`python -m bench.masking [--tree PATH]`: what masking card numbers costs.

Two tables: microseconds per call of `mask_text` and `Privacy.mask` on typical turn text (every
turn append pays them), best of several timeit rounds; and microseconds per KB of text built to
be hard (digit groups and separators only), at 16, 64 and 256 KB, to show the cost stays
linear. `--tree` measures another checkout's code instead (e.g. the previous commit, from
`git archive HEAD handoff schemas | tar -x -C /tmp/before`), for a before/after comparison on
the same machine.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial

TYPICAL = {
    "no digits, 73 chars":
        "I was charged twice and I would like to talk to a human about it, please.",
    "few digits, 77 chars":
        "Order A-1001. Call me on +1 (555) 010-4477 after 5, it's about the 2 charges.",
    "a card, 64 chars": "my card is 4111 1111 1111 1111 and the CVV 737, please refund it",
    "no digits, 1000 chars": "Sorry about that! I can help you with your order. " * 20,
    "few digits, 1000 chars":
        ("Your order A-1001 of 23/11 ships on 2026-11-25; call 0800 123 456. " * 15)[:1000],
}
SEPARATORS = [" ", "-", ".", "  ", "/", "\u00a0", "\u200b"]


def hard(kind: str, size: int) -> str:
    """`size` characters of one kind of hard text."""
    pick = random.Random(7)
    parts, length = [], 0
    while length < size:
        if kind == "single digits":  # every group ends seven candidate card numbers
            part = pick.choice("0123456789") + " "
        elif kind == "mixed groups":
            part = "".join(pick.choices("0123456789", k=pick.randint(1, 5))) + pick.choice(
                SEPARATORS)
        elif kind == "card after card":
            part = "4111 1111 1111 1111 "
        else:  # one long run of digits
            part = pick.choice("0123456789")
        parts.append(part)
        length += len(part)
    return "".join(parts)[:size]


def best_of(call: Callable[[], object], number: int, rounds: int) -> float:
    """Seconds per call, the best of `rounds` rounds of `number` calls."""
    return min(timeit.repeat(call, number=number, repeat=rounds)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="a checkout whose handoff package to measure")
    args = parser.parse_args()
    if args.tree:
        sys.path.insert(0, args.tree)
    try:
        mask_text = importlib.import_module("handoff.kernel.masking").mask_text
    except ModuleNotFoundError:  # a checkout from before masking moved out of the services
        mask_text = importlib.import_module("handoff.services.masking").mask_text
    from handoff.kernel.settings import Settings
    from handoff.services.privacy import Privacy

    privacy = Privacy(Settings(redis_url="redis://unused"), lambda value: value)
    print(f"{'typical turn text':24s} {'mask_text':>12s} {'Privacy.mask':>14s}")
    for name, text in TYPICAL.items():
        plain = best_of(partial(mask_text, text), 20_000, 9) * 1e6
        full = best_of(partial(privacy.mask, "acme", text), 20_000, 9) * 1e6
        print(f"{name:24s} {plain:9.2f} us {full:11.2f} us")
    print(f"\n{'hard text':16s} {'16 KB':>12s} {'64 KB':>12s} {'256 KB':>12s}   (us per KB)")
    for kind in ("digits only", "single digits", "mixed groups", "card after card"):
        cells = []
        for size in (16 * 1024, 64 * 1024, 256 * 1024):
            text = hard(kind, size)
            started = time.perf_counter()
            seconds = best_of(partial(mask_text, text), 1, 5)
            cells.append(f"{seconds * 1e6 / (size / 1024):12.1f}")
            if time.perf_counter() - started > 30:
                break
        print(f"{kind:16s} {''.join(cells)}")


if __name__ == "__main__":
    main()
