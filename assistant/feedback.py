"""Feedback on answers: an append-only JSONL log, exported as candidate eval questions.

Every thumbs click or correction appends one complete record; a later record with the same
`id` supersedes an earlier one (a thumbs-down followed by a comment is one piece of
feedback). Appends hold a file lock and are flushed and fsynced, so concurrent writers from
several app workers never interleave lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Literal

from filelock import FileLock

from assistant import jsonl
from assistant.answer import Answer

Rating = Literal["up", "down"]

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
class Feedback:
    id: str
    question: str
    answer: str = ""
    citations: list[str] = field(default_factory=list)
    abstained: bool = False
    rating: Rating | None = None
    comment: str = ""
    expected: list[str] = field(default_factory=list)  # item ids the answer should have cited
    out_of_scope: bool = False  # the user says the lists do not cover the question
    history: list[str] = field(default_factory=list)  # earlier questions of the conversation
    towns: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    intent: str = ""
    generator: str = ""
    time: str = ""

    @classmethod
    def for_answer(
        cls, id: str, answer: Answer, *, history: Sequence[str] = (), towns: Sequence[str] = (),
        lists: Sequence[str] = (),
    ) -> Feedback:
        intent = answer.retrieval.query.intent.value if answer.retrieval else ""
        return cls(
            id=id, question=answer.question, answer=answer.text, citations=[i.id for i in answer.citations],
            abstained=answer.abstained, history=list(history), towns=list(towns), lists=list(lists),
            intent=intent, generator=answer.generator,
        )

    @property
    def corrected(self) -> bool:
        """The user named a different outcome than the answer gave."""
        if self.out_of_scope:
            return not self.abstained
        return bool(self.expected) and set(self.expected) != set(self.citations)

    @classmethod
    def from_dict(cls, data: dict) -> Feedback:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class FeedbackError(ValueError):
    """A line of the feedback file that is not a feedback record."""


class FeedbackLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = FileLock(str(self.path) + ".lock")

    def append(self, record: Feedback) -> Feedback:
        """Write one record durably; sets its time if unset."""
        record.time = record.time or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            jsonl.append(self.path, [asdict(record)])
        return record

    def read(self) -> tuple[list[Feedback], list[FeedbackError]]:
        """All records in file order, and the lines that could not be read."""
        if not self.path.exists():
            return [], []
        records = []
        with self.lock:
            data = self.path.read_bytes()
        # One damaged byte must not cost the other records: decode with replacement.
        bad: list[jsonl.JsonlError] = []
        for number, line in jsonl.parse(data.decode("utf-8", errors="replace"), self.path, bad):
            try:
                if not isinstance(line, dict) or not line.get("id") or not line.get("question"):
                    raise ValueError("needs the fields id and question")
                records.append(Feedback.from_dict(line))
            except (ValueError, TypeError) as exc:
                bad.append(jsonl.JsonlError(self.path, number, str(exc)))
        return records, [FeedbackError(str(error)) for error in sorted(bad, key=lambda e: e.line)]


def latest(records: Iterable[Feedback]) -> list[Feedback]:
    """One record per feedback id: the last one written."""
    by_id: dict[str, Feedback] = {}
    for record in records:
        by_id.pop(record.id, None)
        by_id[record.id] = record
    return list(by_id.values())


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
    source = Path(path) if path else Path(str(files("eval") / "questions.jsonl"))
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
