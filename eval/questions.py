"""The graded question set: typed records loaded from `questions.jsonl`, with schema checks.

A malformed line is reported as "file:line: field: problem", never as a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant import jsonl

QUESTIONS_FILE = Path(__file__).parent / "questions.jsonl"

KINDS = (
    "single",
    "withdrawn",
    "department",
    "number",
    "enumeration",
    "count",
    "comparison",
    "out_of_scope",
    "follow_up",
    "trap",
)
SPLITS = ("train", "dev", "test")
"""train: for anything learned; dev: for choices; test: frozen, reported, never used to choose."""
OOS_KINDS = ("figure", "place", "service")
BANDED_KINDS = ("single", "withdrawn", "department", "trap")
BANDS = (("low", 0.0, 0.15), ("mid", 0.15, 0.4), ("high", 0.4, 1.01))
"""Lexical-overlap bands: share of a question's character bigrams found in its gold item."""
MATCHES = ("any", "all")
SINGLE_ITEM_KINDS = ("single", "withdrawn", "department", "number")
"""Kinds whose question asks about one duty: the issue's 'single-item hit' is measured over these."""


class QuestionError(ValueError):
    """A malformed question line; the message names file, line and field."""


@dataclass(frozen=True)
class Question:
    id: str
    split: str
    kind: str
    question: str
    gold: tuple[str, ...] = ()
    match: str = "any"
    facts: tuple[str, ...] = ()
    count: int | None = None
    history: tuple[str, ...] = ()
    note: str = ""
    overlap: float | None = None
    oos: str = ""
    duty: str = ""

    @property
    def band(self) -> str | None:
        """The overlap band of a single-item question, None for the other kinds."""
        if self.overlap is None or self.kind not in BANDED_KINDS:
            return None
        return next(name for name, low, high in BANDS if low <= self.overlap < high)

    @property
    def in_scope(self) -> bool:
        return self.kind != "out_of_scope"

    def to_dict(self) -> dict:
        data = {
            "id": self.id,
            "split": self.split,
            "kind": self.kind,
            "question": self.question,
            "gold": list(self.gold),
            "match": self.match,
            "facts": list(self.facts),
        }
        if self.count is not None:
            data["count"] = self.count
        if self.history:
            data["history"] = list(self.history)
        if self.overlap is not None:
            data["overlap"] = self.overlap
        for key in ("oos", "duty", "note"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


_REQUIRED = {"id": str, "split": str, "kind": str, "question": str, "gold": list, "match": str, "facts": list}
_OPTIONAL = {"count": int, "history": list, "note": str, "overlap": float, "oos": str, "duty": str}


def parse_question(data: object, where: str) -> Question:
    """One JSON object → `Question`, or a `QuestionError` naming the field."""
    if not isinstance(data, dict):
        raise QuestionError(f"{where}: expected a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise QuestionError(f"{where}: {key}: missing")
        if not isinstance(data[key], kind):
            raise QuestionError(f"{where}: {key}: expected {kind.__name__}")
    for key, kind in _OPTIONAL.items():
        value = float(data[key]) if key == "overlap" and isinstance(data.get(key), int) else data.get(key)
        if key in data and (not isinstance(value, kind) or isinstance(value, bool)):
            raise QuestionError(f"{where}: {key}: expected {kind.__name__}")
    unknown = set(data) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise QuestionError(f"{where}: {', '.join(sorted(unknown))}: unknown field")
    for key, allowed in (("split", SPLITS), ("kind", KINDS), ("match", MATCHES)):
        if data[key] not in allowed:
            raise QuestionError(f"{where}: {key}: {data[key]!r} is not one of {', '.join(allowed)}")
    for key in ("gold", "facts", "history"):
        if not all(isinstance(v, str) and v for v in data.get(key, [])):
            raise QuestionError(f"{where}: {key}: expected non-empty strings")
    if not data["question"].strip():
        raise QuestionError(f"{where}: question: empty")
    if data["kind"] == "count" and "count" not in data:
        raise QuestionError(f"{where}: count: missing for a count question")
    if data["kind"] == "follow_up" and not data.get("history"):
        raise QuestionError(f"{where}: history: missing for a follow_up question")
    if "oos" in data and data["oos"] not in OOS_KINDS:
        raise QuestionError(f"{where}: oos: {data['oos']!r} is not one of {', '.join(OOS_KINDS)}")
    if data["kind"] == "out_of_scope" and data["gold"]:
        raise QuestionError(f"{where}: gold: must be empty for out_of_scope")
    if data["kind"] != "out_of_scope" and not data["gold"] and "count" not in data:
        raise QuestionError(f"{where}: gold: empty for an in-scope question")
    return Question(
        id=data["id"],
        split=data["split"],
        kind=data["kind"],
        question=data["question"],
        gold=tuple(data["gold"]),
        match=data["match"],
        facts=tuple(data["facts"]),
        count=data.get("count"),
        history=tuple(data.get("history", ())),
        note=data.get("note", ""),
        overlap=float(data["overlap"]) if "overlap" in data else None,
        oos=data.get("oos", ""),
        duty=data.get("duty", ""),
    )


def load_questions(path: Path = QUESTIONS_FILE, split: str = "all", kinds: Iterable[str] = ()) -> list[Question]:
    """Questions of one split ('dev', 'test' or 'all'), optionally only some kinds."""
    if split not in (*SPLITS, "all"):
        raise QuestionError(f"{path}: unknown split {split!r}; valid: {', '.join(SPLITS)}, all")
    questions: list[Question] = []
    seen: set[str] = set()
    try:
        records = jsonl.read(path)
    except jsonl.JsonlError as exc:
        raise QuestionError(str(exc)) from None
    for number, data in records:
        where = f"{path}:{number}"
        question = parse_question(data, where)
        if question.id in seen:
            raise QuestionError(f"{where}: id: {question.id} appears twice")
        seen.add(question.id)
        questions.append(question)
    wanted = set(kinds)
    return [q for q in questions if (split == "all" or q.split == split) and (not wanted or q.kind in wanted)]
