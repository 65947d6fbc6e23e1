"""CI gate: the extractive eval on the test split must hold the figures in eval/baseline.json.

After a deliberate improvement (or an accepted trade-off), refresh the reference with
`duty-assistant eval --split test --save-baseline eval/baseline.json`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import eval as eval_package
from assistant.answering.retrieve import Retriever
from assistant.service import Assistant
from eval.gate import regressions
from eval.questions import load_questions
from eval.report import load_reference
from eval.runner import AssistantSystem, evaluate

BASELINE = Path(eval_package.__file__).parent / "baseline.json"


@pytest.fixture(scope="module")
def reference() -> dict:
    data = load_reference(BASELINE)
    assert data["split"] == "test" and data["generator"] == "extractive"
    return data


def gate(assistant, reference: dict):
    questions = load_questions(split="test")
    summary = evaluate([AssistantSystem(assistant)], questions, split="test").summaries["ours"]
    assert summary["overall"]["n"] == len(questions) == reference["questions"]
    return summary, regressions(summary, reference["systems"]["ours"], reference["tolerance"])


def test_extractive_eval_holds_the_baseline(assistant, reference):
    summary, worse = gate(assistant, reference)
    assert summary["overall"]["errors"] == 0
    assert not worse, "regressed beyond tolerance: " + "; ".join(f"{c.key} {c.before} → {c.after}" for c in worse)


class NeighbourRetriever(Retriever):
    """A plausible-looking bug: every cited item is replaced by the next item in the store."""

    def retrieve(self, question, **filters):
        result = super().retrieve(question, **filters)
        result.cited = [self.items[(self.position[item.id] + 1) % len(self.items)] for item in result.cited]
        return result


def test_a_broken_retriever_fails_the_gate(assistant, reference):
    broken = Assistant(assistant.kb, assistant.settings)
    broken.retriever = NeighbourRetriever(assistant.kb, assistant.settings)
    _, worse = gate(broken, reference)
    assert {"citation_hit", "citation_precision", "set_f1"} <= {c.key for c in worse}
