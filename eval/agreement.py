"""How reproducible the bank's comparison gold sets are: a second annotator's sets against them.

The topic-comparison target (exact set ≥ 0.90) is only meaningful if a careful reader would
draw the same sets. A second annotator, who saw only the items (neither the bank's gold nor the
assistant's answers), wrote the gold sets of 80 dev topic comparisons under the bank's rule
(every item of both townships squarely on the subject): `comparisons.second.jsonl`. Measured
2026-12-02: the second annotator's sets equal the bank's on 75 of 80 (0.94); the assistant's cited
sets equal the bank's on 68 of 80 (0.85), and the second annotator's on 68. So the gold sets are
reproducible, and the gap to the target is the assistant's, not the labels'.

Run `python -m eval.agreement [report.json]`: the agreement, and with an eval report, how its
cited sets compare with both annotators.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from assistant import jsonl
from eval.questions import QUESTIONS_FILE, load_questions

SECOND_FILE = Path(__file__).with_name("comparisons.second.jsonl")

Sets = Mapping[str, frozenset[str]]


def load_sets(path: Path = SECOND_FILE) -> dict[str, frozenset[str]]:
    """Question id → the second annotator's gold set; a malformed line names file and line."""
    sets = {}
    for number, record in jsonl.read(path):
        try:
            sets[str(record["id"])] = frozenset(str(g) for g in record["gold"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {type(exc).__name__}: {exc}") from None
    return sets


def agreement(first: Sets, second: Sets) -> tuple[int, int]:
    """(questions whose two sets are equal, questions both cover)."""
    shared = first.keys() & second.keys()
    return sum(first[q] == second[q] for q in shared), len(shared)


def cited_sets(report: Path) -> dict[str, frozenset[str]]:
    """Question id → the cited set of the assistant ('ours') in a saved eval report."""
    results = json.loads(report.read_text(encoding="utf-8"))["results"]["ours"]
    return {r["id"]: frozenset(r["cited"]) for r in results}


def main(argv: Sequence[str] = ()) -> int:
    second = load_sets()
    bank = {q.id: frozenset(q.gold) for q in load_questions(QUESTIONS_FILE) if q.id in second}
    lines = [("second annotator = bank", agreement(second, bank))]
    if argv:
        ours = cited_sets(Path(argv[0]))
        lines += [("assistant = bank", agreement(ours, bank)), ("assistant = second", agreement(ours, second))]
    for label, (equal, shared) in lines:
        print(f"{label}: {equal} of {shared} ({equal / max(shared, 1):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
