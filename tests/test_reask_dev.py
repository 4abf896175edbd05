"""The re-ask detector on the development set (tests/reask_dev.py): precision and recall are
measured the same way as on the phrase set and written to tests/artifacts/reask-dev.txt, with
every miss and false alarm."""

from __future__ import annotations

from handoff.kernel.settings import Settings
from handoff.services.reask_detector import Detector, Known
from tests.browser import artifact
from tests.reask_dev import DEV, KNOWN

DETECTOR = Detector(Settings().reask_topics)
PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.95


def measure(labelled: list[tuple[str, str | None]], known: dict[str, list[Known]]
            ) -> tuple[int, int, int, list[str]]:
    """True positives, false positives, false negatives over `labelled`, and what went wrong."""
    true_pos = false_pos = false_neg = 0
    wrong = []
    for text, label in labelled:
        wanted = set((label or "").split())
        found = {h.topic for h in DETECTOR.detect(text, known)}
        true_pos += len(wanted & found)
        false_neg += len(wanted - found)
        false_pos += len(found - wanted)
        wrong += [f"missed {t}: {text}" for t in sorted(wanted - found)]
        wrong += [f"false alarm {t}: {text}" for t in sorted(found - wanted)]
    return true_pos, false_pos, false_neg, wrong


def test_the_detector_on_the_development_set() -> None:
    true_pos, false_pos, false_neg, wrong = measure(DEV, KNOWN)
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    negatives = sum(1 for _, t in DEV if not t)
    figures = (f"re-ask detector on the development set, {len(DEV)} agent turns "
               f"({true_pos + false_neg} re-asks, {negatives} turns asking nothing known): "
               f"precision {precision:.3f}, recall {recall:.3f} "
               f"(TP {true_pos}, FP {false_pos}, FN {false_neg})\n"
               + "".join(f"  {w}\n" for w in wrong))
    artifact("reask-dev.txt").write_text(figures)
    print(figures)
    assert precision >= PRECISION_FLOOR, figures
    assert recall >= RECALL_FLOOR, figures


def test_no_turn_of_the_development_set_is_a_reask_when_nothing_is_known() -> None:
    assert [text for text, _ in DEV if DETECTOR.detect(text, {})] == []


def test_shorthand_and_slips_are_spelt_out_but_values_and_real_words_are_left_alone() -> None:
    assert DETECTOR.normalise("whats ur acc no? cud u confim ur emial") == (
        "what's your account number? could you confirm your email")
    assert DETECTOR.normalise("is it u.no@acc.example or order #7 on the border?") == (
        "is it u.no@acc.example or order #7 on the border?")
