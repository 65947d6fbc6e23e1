"""The same duty across townships and versions, matched by title.

Numbers do not identify a duty (each township numbers its own lists, an insertion renumbers
everything after it), and titles differ in small ways between lists (“私屠滥宰”执法监管 vs 私屠滥宰
执法监管). Character-bigram Dice similarity is robust to such differences; pairs are matched
one-to-one, best first. Comparison, `diff` and the inherited situation questions all use this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

THRESHOLD = 0.5
"""Below this, two titles name different duties (checked on the two shipped townships: every
aligned pair scores ≥ 0.6, the best unrelated pair < 0.5)."""

T = TypeVar("T")
U = TypeVar("U")


def similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams; 1.0 for equal strings."""
    if a == b:
        return 1.0
    grams_a = {a[i : i + 2] for i in range(len(a) - 1)}
    grams_b = {b[i : i + 2] for i in range(len(b) - 1)}
    if not grams_a or not grams_b:
        return 0.0
    return 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))


def match(
    left: Sequence[T],
    right: Sequence[U],
    title_left: Callable[[T], str],
    title_right: Callable[[U], str],
    *,
    allowed: Callable[[T, U], bool] = lambda a, b: True,
    tie_break: Callable[[T, U], tuple] = lambda a, b: (),
    threshold: float = THRESHOLD,
) -> list[tuple[T, U, float]]:
    """One-to-one pairs (left, right, similarity), best similarity first, then `tie_break`."""
    candidates = []
    for i, a in enumerate(left):
        for j, b in enumerate(right):
            if allowed(a, b):
                score = similarity(title_left(a), title_right(b))
                if score >= threshold:
                    candidates.append((-score, tie_break(a, b), i, j))
    candidates.sort()
    used_left: set[int] = set()
    used_right: set[int] = set()
    pairs = []
    for score, _, i, j in candidates:
        if i not in used_left and j not in used_right:
            used_left.add(i)
            used_right.add(j)
            pairs.append((left[i], right[j], -score))
    return pairs
