"""Which duty a question describes: a classifier learned from the situation questions.

The situation questions are examples of how people ask about each duty. Searching them by the
best single cosine asks "which one example is closest"; a multinomial logistic regression over
the question's vector and its hashed character n-grams, fitted on all examples of all duties,
asks "which duty do questions like this belong to" and weighs every example of every duty. On the
dev split (single-item questions, 6 situation questions per duty) it put the gold duty first for
0.87 of questions, against 0.71 for the best-cosine search; with 13 per duty, 0.89 of the 1,499
train + dev single-item questions (0.86 with 6). Every duty needs about as many examples:
while some had 13 and others 6, the classifier favoured the former and scored 0.84. The train
split's single-item questions, written by other hands than the situations, join them as
examples: gold duty first on dev 0.885 → 0.940, top three 0.972 → 0.986.

Classes are situation entries (`Entry.key`), so an item scores through the entry it inherits,
and a new township's list is scored like the shipped ones. The model is a file
(`assistant/data/duties.npz`) fitted by `duty-assistant train`; it records the embedder its
vectors came from and the situations it was fitted on, and is not used with another embedder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

from assistant.answering.ngrams import char_ngram_rows
from assistant.index.situations import SITUATIONS_FILE

MODEL_FILE = Path(__file__).parents[1] / "data" / "duties.npz"
HASH_FEATURES = 2**13


def inputs(vectors: np.ndarray, texts: list[str]) -> sparse.csr_matrix:
    """The question's vector next to its hashed character n-grams, one row per question. In
    float32: a fit on 7,400 rows took 36 s instead of 61 s, its probabilities within 0.01."""
    return sparse.hstack(
        [sparse.csr_matrix(np.atleast_2d(vectors)), char_ngram_rows(texts, HASH_FEATURES)],
        format="csr",
        dtype=np.float32,
    )


def situations_digest(path: Path = SITUATIONS_FILE) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class DutyClassifier:
    keys: tuple[str, ...]  # one situation entry per class
    weights: np.ndarray  # (classes, dimension + HASH_FEATURES)
    bias: np.ndarray
    embedder: str
    situations: str  # digest of the situations file it was fitted on
    version: str

    def __post_init__(self) -> None:
        # by feature, then class: a question touches ~50 of the 8,192 n-gram rows
        object.__setattr__(self, "_by_feature", np.ascontiguousarray(self.weights.T))

    def probabilities(self, vector: np.ndarray, text: str) -> np.ndarray:
        """P(duty) for every class, given the question's vector and its (place-masked) text."""
        by_feature: np.ndarray = self._by_feature  # type: ignore[attr-defined]
        dimension = by_feature.shape[0] - HASH_FEATURES
        grams = char_ngram_rows([text], HASH_FEATURES)
        scores = vector @ by_feature[:dimension] + grams.data @ by_feature[dimension + grams.indices] + self.bias
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()

    def save(self, path: Path = MODEL_FILE) -> None:
        np.savez_compressed(
            path,
            keys=np.array(self.keys),
            weights=self.weights.astype(np.float16),
            bias=self.bias,
            embedder=np.array(self.embedder),
            situations=np.array(self.situations),
            version=np.array(self.version),
        )
        load_model.cache_clear()


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> DutyClassifier | None:
    """The fitted classifier, or None before the first `duty-assistant train`."""
    if not path.exists():
        return None
    with np.load(path) as data:
        return DutyClassifier(
            tuple(data["keys"].tolist()),
            data["weights"].astype(np.float32),
            data["bias"].astype(np.float32),
            str(data["embedder"]),
            str(data["situations"]),
            str(data["version"]),
        )
