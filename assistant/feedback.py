"""Feedback on answers: an append-only JSONL log, exported as candidate eval questions.

Every thumbs click or correction appends one complete record; a later record with the same
`id` supersedes an earlier one (a thumbs-down followed by a comment is one piece of
feedback). Appends hold a file lock and are flushed and fsynced, so concurrent writers from
several app workers never interleave lines. Turning feedback into eval questions is the eval
package's job (`eval.feedback`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from filelock import FileLock

from assistant import jsonl
from assistant.answering.answer import Answer

Rating = Literal["up", "down"]


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
        cls,
        id: str,
        answer: Answer,
        *,
        history: Sequence[str] = (),
        towns: Sequence[str] = (),
        lists: Sequence[str] = (),
    ) -> Feedback:
        intent = answer.retrieval.query.intent.value if answer.retrieval else ""
        return cls(
            id=id,
            question=answer.question,
            answer=answer.text,
            citations=[i.id for i in answer.citations],
            abstained=answer.abstained,
            history=list(history),
            towns=list(towns),
            lists=list(lists),
            intent=intent,
            generator=answer.generator,
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
        record.time = record.time or datetime.now(UTC).isoformat(timespec="seconds")
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
