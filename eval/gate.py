"""Pass / fail judgements on a summary: regressions against a reference, floors, targets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eval.metrics import BY_KEY, HEADLINE, lookup


@dataclass(frozen=True)
class Change:
    key: str  # 'citation_hit', 'single_item.citation_hit', 'enumeration.set_f1'
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def gain(self) -> float | None:
        """The change in the metric's good direction (negative: worse)."""
        if self.delta is None:
            return None
        return self.delta if BY_KEY[self.key.rpartition(".")[2]].higher_is_better else -self.delta


DEFAULT_TOLERANCE = 0.02
"""About two questions of citation hit on the test split; one set or abstention question fails it."""


def changes(summary: dict, reference: dict, keys: tuple[str, ...] = HEADLINE) -> list[Change]:
    return [Change(key, lookup(reference, key), lookup(summary, key)) for key in keys]


def regressions(summary: dict, reference: dict, tolerance: float, keys: tuple[str, ...] = HEADLINE) -> list[Change]:
    """Headline figures that got worse than the reference by more than `tolerance`.

    A figure the reference has but this run lacks (no question of that kind ran) counts
    as a regression: a gate must not pass by skipping questions.
    """
    worse = []
    for change in changes(summary, reference, keys):
        if change.before is None:
            continue
        if change.after is None or change.gain < -tolerance - 1e-9:
            worse.append(change)
    return worse


@dataclass(frozen=True)
class Bound:
    key: str
    value: float

    def met(self, summary: dict) -> bool | None:
        actual = lookup(summary, self.key)
        if actual is None:
            return None
        higher = BY_KEY[self.key.rpartition(".")[2]].higher_is_better
        return actual >= self.value - 1e-9 if higher else actual <= self.value + 1e-9

    @property
    def sign(self) -> str:
        return ">=" if BY_KEY[self.key.rpartition(".")[2]].higher_is_better else "<="


def parse_bounds(specs: list[str]) -> list[Bound]:
    """'citation_hit=0.95', 'enumeration.set_f1=0.98' → bounds; a bad spec raises ValueError."""
    bounds = []
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep:
            raise ValueError(f"{spec!r}: expected METRIC=VALUE, e.g. citation_hit=0.95")
        try:
            lookup({"overall": {}, "single_item": {}, "kinds": {}}, key.strip())
            bounds.append(Bound(key.strip(), float(value)))
        except KeyError as exc:
            raise ValueError(f"{spec!r}: {exc.args[0]}") from None
        except ValueError:
            raise ValueError(f"{spec!r}: {value!r} is not a number") from None
    return bounds


def unmet(summary: dict, bounds: list[Bound]) -> list[Bound]:
    """Bounds the summary misses (a figure that could not be computed misses too)."""
    return [b for b in bounds if not b.met(summary)]


TARGETS = tuple(
    Bound(key, value)
    for key, value in {
        "single_item.citation_hit": 0.97,
        "citation_precision": 0.95,
        "enumeration.set_f1": 0.98,
        "out_of_scope.abstention_recall": 0.9,
        "false_abstention": 0.03,
        "latency_p95": 1.0,
    }.items()
)
"""The issue's targets for ours (extractive generator, test split)."""


def reference_summary(reference: Mapping, system: str = "ours") -> dict | None:
    """A system's summary from a report, a history entry or a saved baseline."""
    return (reference.get("systems") or {}).get(system)
