"""Two models (or two settings) scored on the same prompts: a paired comparison, not two unpaired error bars.

Each side is a string of 0/1 per prompt (the experiments' ``correct`` fields), in the same prompt order. What
matters is the prompts on which they disagree: :func:`paired_comparison` gives the difference of accuracies
with its paired standard error and the exact McNemar test (a two-sided sign test on the discordant prompts).
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def _bits(correct: str | Sequence) -> list[bool]:
    if isinstance(correct, str):
        if set(correct) - {"0", "1"}:
            raise ValueError("a correctness string holds only 0 and 1")
        return [c == "1" for c in correct]
    return [bool(c) for c in correct]


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact p-value of ``wins`` against ``losses`` under a fair coin (1.0 with no discordant pairs)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    log_half = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
               for i in range(k + 1))
    return min(1.0, 2 * tail)


def paired_comparison(correct_a: str | Sequence, correct_b: str | Sequence) -> dict:
    """{"n", "a_only" (prompts only A got right), "b_only", "difference" (accuracy A - accuracy B), "se" (its paired
    standard error), "p" (exact McNemar)} of two scorings of the same prompts."""
    a, b = _bits(correct_a), _bits(correct_b)
    if len(a) != len(b) or not a:
        raise ValueError(f"a paired comparison needs the same prompts on both sides, got {len(a)} and {len(b)}")
    n = len(a)
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    difference = (a_only - b_only) / n
    se = math.sqrt(max(0.0, (a_only + b_only) / n - difference ** 2) / n)
    return {"n": n, "a_only": a_only, "b_only": b_only, "difference": difference, "se": se,
            "p": sign_test_p(a_only, b_only)}
