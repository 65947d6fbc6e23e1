"""Learned relevance: is this candidate item what the question is about?

Every single-item candidate is described by the same features — the four retrieval signals
(item vectors, item keywords, situation-question vectors, situation-question keywords) as scores
and as ranks, term overlap with the item and its title, how close the candidate is to the best
candidate, whether a department the question names is the item's, whether the item has
situation questions at all (and its own signals again for one that has none) — and a logistic regression
trained on the train split (`duty-assistant train`) turns them into a probability. The same
probability orders the candidates (so a neighbour that shares vocabulary no longer outranks the
duty the question describes) and gates the answer: below the threshold chosen for at most 1%
false abstentions on the train and dev in-scope questions, the assistant abstains.

The model is a small JSON file (`assistant/data/relevance.json`) recording its features,
weights, threshold and the data it was trained on; answers record its version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).parents[1] / "data" / "relevance.json"
FEATURES = (
    "dense",
    "keyword",
    "sit_dense",
    "sit_keyword",
    "rank_dense",
    "rank_keyword",
    "rank_sit_dense",
    "rank_sit_keyword",
    "overlap",
    "title_overlap",
    "gap_dense",
    "gap_sit_dense",
    "gap_keyword",
    "gap_sit_keyword",
    "department",
    "situations",
    "dense_alone",
    "keyword_alone",
    "duty",
    "rank_duty",
    "gap_duty",
)
SITUATION_FEATURES = (
    "sit_dense",
    "sit_keyword",
    "rank_sit_dense",
    "rank_sit_keyword",
    "gap_sit_dense",
    "gap_sit_keyword",
    "situations",
    "duty",
    "rank_duty",
    "gap_duty",
)
"""What an item without situation questions (a duty new to the data) lacks: training also sees
every candidate without them, so such an item is still judged on its own text."""


class ModelError(ValueError):
    """The model file is missing a field or does not fit the features; names the file."""


@dataclass(frozen=True)
class RelevanceModel:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    version: str

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """P(relevant) for each row of features (columns in `FEATURES` order)."""
        z = ((rows - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "threshold": self.threshold,
        }


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> RelevanceModel | None:
    """The trained model, or None when there is none yet (the calibrated formula is used then)."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = RelevanceModel(
            features=tuple(data["features"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            version=str(data["version"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: {type(exc).__name__}: {exc}") from None
    if model.features != FEATURES:
        raise ModelError(f"{path}: trained on features {model.features}, this code computes {FEATURES}; re-train")
    if not np.isfinite(model.threshold) or not 0 < model.threshold < 1:
        raise ModelError(f"{path}: threshold: {model.threshold} is not a probability")
    return model


def save_model(model: RelevanceModel, path: Path = MODEL_FILE) -> None:
    path.write_text(json.dumps(model.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    load_model.cache_clear()
