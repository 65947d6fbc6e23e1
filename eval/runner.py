"""Run systems over the question set and score them.

Ours goes through `Assistant.ask`, the code path of `ask`, the UI and the API. A follow-up
question is asked after its history questions, with the earlier turns passed along; only
the follow-up turn is timed and scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Protocol

from assistant.answering.answer import Answer
from assistant.answering.followup import Turn
from assistant.service import Assistant
from eval.metrics import Outcome, Scored, score, summarize
from eval.questions import Question

log = logging.getLogger(__name__)

GENERATORS = ("extractive", "llm")


class System(Protocol):
    name: str

    def answer(self, question: str, history: Sequence[tuple[str, Answer]] = ()) -> Answer: ...


@dataclass
class AssistantSystem:
    """Ours: `Assistant.ask` with the extractive or the LLM generator."""

    assistant: Assistant
    generator: str = "extractive"
    name: str = "ours"

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; valid: {', '.join(GENERATORS)}")

    def answer(self, question: str, history: Sequence[tuple[str, Answer]] = ()) -> Answer:
        turns = [Turn(q, a) for q, a in history]
        return self.assistant.ask(question, history=turns, use_llm=self.generator == "llm")


def outcome_of(answer: Answer, seconds: float) -> Outcome:
    cited = [item.id for item in answer.citations]
    retrieval = answer.retrieval
    ranking = [hit.item.id for hit in retrieval.hits] if retrieval is not None and retrieval.hits else cited
    return Outcome(cited=cited, ranking=ranking, abstained=answer.abstained, text=answer.text, seconds=seconds)


def ask(system: System, question: Question) -> Outcome:
    """One question, its history first; failures become outcomes, never exceptions."""
    try:
        history: list[tuple[str, Answer]] = []
        for earlier in question.history:
            history.append((earlier, system.answer(earlier, tuple(history))))
        started = time.perf_counter()
        answer = system.answer(question.question, tuple(history))
        return outcome_of(answer, time.perf_counter() - started)
    except Exception as exc:  # one failing question must not end the run
        log.exception("%s failed on %s", system.name, question.id)
        return Outcome(status="error", error=f"{type(exc).__name__}: {exc}")


Progress = Callable[[str, int, int], None]


def run_system(system: System, questions: Sequence[Question], progress: Progress | None = None) -> list[Scored]:
    results = []
    for done, question in enumerate(questions, 1):
        outcome = ask(system, question)
        results.append(Scored(question, outcome, score(question, outcome)))
        if progress:
            progress(system.name, done, len(questions))
    return results


@dataclass
class EvalRun:
    split: str
    generator: str
    results: dict[str, list[Scored]]  # system name → per-question results
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    commit: str = ""
    settings: dict = field(default_factory=dict)
    index: dict = field(default_factory=dict)
    seconds: float = 0.0

    @cached_property
    def summaries(self) -> dict[str, dict]:
        return {name: summarize(results) for name, results in self.results.items()}


def evaluate(
    systems: Sequence[System],
    questions: Sequence[Question],
    *,
    split: str,
    generator: str = "extractive",
    progress: Progress | None = None,
) -> EvalRun:
    """Every system on the same questions, in one run."""
    started = time.perf_counter()
    results = {system.name: run_system(system, questions, progress) for system in systems}
    return EvalRun(split, generator, results, seconds=time.perf_counter() - started)
