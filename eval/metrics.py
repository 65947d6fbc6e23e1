"""Id-based, deterministic metrics: per question, then per kind and overall.

Every metric compares item ids (township + list + number) or exact strings, so two runs of
the same system on the same questions score identically. A metric that does not apply to a
question (precision of an abstention, set F1 of a single-item question) is left out of the
averages rather than counted as zero or one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from eval.questions import BANDS, KINDS, SINGLE_ITEM_KINDS, Question


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # column header; a line break where a narrow table may wrap it
    higher_is_better: bool = True
    gated: bool = True  # part of the headline figures the regression gate watches


METRICS = (
    Metric("score", "score"),
    Metric("hit@1", "hit@1"),
    Metric("hit@5", "hit@5"),
    Metric("mrr", "MRR"),
    Metric("citation_hit", "cite\nhit"),
    Metric("citation_precision", "cite\nprec"),
    Metric("set_recall", "set\nR", gated=False),
    Metric("set_precision", "set\nP", gated=False),
    Metric("set_f1", "set\nF1"),
    Metric("exact_set", "exact\nset"),
    Metric("count_accuracy", "count\nacc"),
    Metric("abstention_recall", "abstain\nrecall"),
    Metric("false_abstention", "false\nabstain", higher_is_better=False),
    Metric("fact_coverage", "facts"),
    Metric("latency_p50", "p50\ns", higher_is_better=False, gated=False),
    Metric("latency_p95", "p95\ns", higher_is_better=False, gated=False),
)
BY_KEY = {m.key: m for m in METRICS}
HEADLINE = tuple(m.key for m in METRICS if m.gated)
HIT_K = (1, 5)


@dataclass
class Outcome:
    """What a system did with one question, reduced to what the metrics need."""

    cited: list[str] = field(default_factory=list)  # item ids, in answer order
    ranking: list[str] = field(default_factory=list)  # retrieval order, best first
    abstained: bool = False
    text: str = ""
    seconds: float = 0.0
    status: str = "ok"  # ok / error
    error: str = ""


def score(question: Question, outcome: Outcome) -> dict[str, float]:
    """The metrics that apply to this question, each in [0, 1]."""
    gold = set(question.gold)
    cited = list(dict.fromkeys(outcome.cited))
    hits = gold & set(cited)
    scores: dict[str, float] = {}
    if question.in_scope:
        scores["false_abstention"] = float(outcome.abstained)
    else:
        scores["abstention_recall"] = float(outcome.abstained)
    if gold:
        scores["citation_hit"] = float(bool(hits))
        if cited:
            scores["citation_precision"] = len(hits) / len(cited)
    if gold and question.match == "any":
        rank = next((i for i, id_ in enumerate(outcome.ranking, 1) if id_ in gold), None)
        for k in HIT_K:
            scores[f"hit@{k}"] = float(rank is not None and rank <= k)
        scores["mrr"] = 1.0 / rank if rank else 0.0
    if gold and question.match == "all":
        recall = len(hits) / len(gold)
        precision = len(hits) / len(cited) if cited else 0.0
        scores["set_recall"] = recall
        scores["set_precision"] = precision
        scores["set_f1"] = 2 * precision * recall / (precision + recall) if hits else 0.0
        scores["exact_set"] = float(set(cited) == gold)
    if question.count is not None:
        scores["count_accuracy"] = float(len(cited) == question.count)
    if question.facts:
        scores["fact_coverage"] = sum(fact in outcome.text for fact in question.facts) / len(question.facts)
    scores["score"] = _primary(question, scores)
    return scores


def _primary(question: Question, scores: dict[str, float]) -> float:
    """One number per question: what its kind is mainly about."""
    if not question.in_scope:
        return scores["abstention_recall"]
    if question.count is not None:
        return scores["count_accuracy"]
    if question.match == "all":
        return scores["set_f1"]
    return scores["citation_hit"]


@dataclass
class Scored:
    question: Question
    outcome: Outcome
    scores: dict[str, float] = field(default_factory=dict)


def aggregate(results: Sequence[Scored]) -> dict[str, float | int | None]:
    """Means of each metric over the questions it applies to, latency percentiles, counts."""
    summary: dict[str, float | int | None] = {
        "n": len(results),
        "errors": sum(r.outcome.status != "ok" for r in results),
    }
    for metric in METRICS:
        if metric.key.startswith("latency_"):
            continue
        values = [r.scores[metric.key] for r in results if metric.key in r.scores]
        summary[metric.key] = round(float(np.mean(values)), 4) if values else None
    seconds = [r.outcome.seconds for r in results]
    summary["latency_p50"] = round(float(np.percentile(seconds, 50)), 4) if seconds else None
    summary["latency_p95"] = round(float(np.percentile(seconds, 95)), 4) if seconds else None
    return summary


def summarize(results: Iterable[Scored]) -> dict:
    """{"overall": …, "single_item": …, "kinds": {kind: …}} for one system's results."""
    results = list(results)
    present = [k for k in KINDS if any(r.question.kind == k for r in results)]
    banded = [name for name, _, _ in BANDS if any(r.question.band == name for r in results)]
    return {
        "overall": aggregate(results),
        "single_item": aggregate([r for r in results if r.question.kind in SINGLE_ITEM_KINDS]),
        "kinds": {k: aggregate([r for r in results if r.question.kind == k]) for k in present},
        "bands": {b: aggregate([r for r in results if r.question.band == b]) for b in banded},
    }


def lookup(summary: dict, key: str) -> float | None:
    """A figure by name: 'citation_hit' (overall), 'single_item.citation_hit', 'enumeration.set_f1',
    'band:low.citation_hit' (single-item questions of one overlap band)."""
    scope, _, metric = key.rpartition(".")
    if metric not in BY_KEY:
        raise KeyError(f"unknown metric {metric!r}; valid: {', '.join(BY_KEY)}")
    if scope in ("", "overall", "single_item"):
        return summary[scope or "overall"].get(metric)
    if scope.startswith("band:"):
        return summary.get("bands", {}).get(scope[5:], {}).get(metric)
    if scope not in KINDS:
        raise KeyError(f"unknown scope {scope!r}; valid: overall, single_item, {', '.join(KINDS)}")
    return summary["kinds"].get(scope, {}).get(metric)
