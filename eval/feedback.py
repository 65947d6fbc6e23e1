"""Feedback → candidate eval questions: downvoted or corrected answers become graded questions.

The log itself (`assistant.feedback`) belongs to the core, which the web app writes to; what
counts as a good eval question, and its kinds, belong here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant import jsonl
from assistant.feedback import Feedback, FeedbackError, FeedbackLog, latest
from eval.questions import QUESTIONS_FILE

# Eval-set kind for each query intent (see eval/README.md).
KIND_BY_INTENT = {
    "single": "single",
    "lookup": "number",
    "enumerate": "enumeration",
    "count": "count",
    "compare": "comparison",
}
SET_KINDS = {"enumeration", "count", "comparison"}


@dataclass
class Export:
    questions: list[dict]  # candidate eval questions, to review before adding to the eval set
    incomplete: list[Feedback]  # downvoted without saying what was expected: no gold to export
    errors: list[FeedbackError]


def candidates(
    records: Iterable[Feedback], known: Iterable[tuple[str, tuple[str, ...]]] = ()
) -> tuple[list[dict], list[Feedback]]:
    """Downvoted or corrected answers as eval questions (eval/questions.jsonl format), and the
    downvotes that cannot become one because the user gave no expected outcome.

    `known` holds (question, history) pairs already in the eval set; they are skipped, and so
    are repeats (the latest feedback on a question wins).
    """
    seen = set(known)
    chosen: dict[tuple[str, tuple[str, ...]], Feedback] = {}
    for record in latest(records):
        key = (record.question, tuple(record.history))
        if key in seen or not (record.rating == "down" or record.corrected):
            continue
        chosen.pop(key, None)
        chosen[key] = record
    complete = [r for r in chosen.values() if r.expected or r.out_of_scope]
    return [candidate(r) for r in complete], [r for r in chosen.values() if not (r.expected or r.out_of_scope)]


def candidate(record: Feedback) -> dict:
    """One eval question from a record that names its expected items (or says out of scope)."""
    kind = _kind(record)
    gold = [] if record.out_of_scope else list(dict.fromkeys(record.expected))
    question = {"id": f"fb-{record.id[:12]}", "split": "dev", "kind": kind, "question": record.question}
    if record.history:
        question["history"] = list(record.history)
    question |= {"gold": gold, "match": "all" if kind in SET_KINDS else "any", "facts": []}
    if kind == "count":
        question["count"] = len(gold)
    question["note"] = _note(record)
    return question


def _kind(record: Feedback) -> str:
    if record.out_of_scope:
        return "out_of_scope"
    if record.history:
        return "follow_up"
    kind = KIND_BY_INTENT.get(record.intent, "single")
    if kind == "single" and all(":withdrawn:" in id_ for id_ in record.expected):
        return "withdrawn"
    return kind


def _note(record: Feedback) -> str:
    parts = [f"from feedback {record.id} ({record.time or 'no time'})"]
    if record.rating:
        parts.append("rated " + record.rating)
    cited = ", ".join(record.citations) or ("abstained" if record.abstained else "nothing")
    parts.append(f"the assistant cited: {cited}")
    if record.comment:
        parts.append(f"comment: {record.comment}")
    return "; ".join(parts)


def known_questions(path: Path | None = None) -> set[tuple[str, tuple[str, ...]]]:
    """(question, history) of every question in the eval set (default: the packaged one)."""
    source = Path(path) if path else QUESTIONS_FILE
    if not source.exists():
        return set()
    known = set()
    for number, data in jsonl.read(source):
        try:
            known.add((data["question"], tuple(data.get("history", ()))))
        except (KeyError, TypeError, AttributeError) as exc:
            raise jsonl.JsonlError(source, number, f"not an eval question ({type(exc).__name__}: {exc})") from None
    return known


def export(log: FeedbackLog, known: Iterable[tuple[str, tuple[str, ...]]] = ()) -> Export:
    records, errors = log.read()
    questions, incomplete = candidates(records, known)
    return Export(questions, incomplete, errors)
