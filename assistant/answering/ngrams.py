"""Hashed character n-grams: the text features of the learned models (intent, duty classifier).

They are scikit-learn's `HashingVectorizer(analyzer="char", alternate_sign=False, norm="l2")`
features, computed with the same MurmurHash3 so that models fitted with scikit-learn at training
time answer without importing it: importing scikit-learn costs ~1.3 s at every start of the CLI.
"""

from __future__ import annotations

import re

import mmh3
import numpy as np
from scipy import sparse

NGRAMS = (1, 3)
_RUNS_OF_SPACE = re.compile(r"\s\s+")


def char_ngrams(text: str, n_features: int) -> sparse.csr_matrix:
    """One row: L2-normalised counts of the text's hashed character 1–3-grams."""
    text = _RUNS_OF_SPACE.sub(" ", text.lower())
    counts: dict[int, float] = {}
    for n in range(NGRAMS[0], NGRAMS[1] + 1):
        for start in range(len(text) - n + 1):
            column = abs(mmh3.hash(text[start : start + n], 0)) % n_features
            counts[column] = counts.get(column, 0.0) + 1.0
    columns = np.array(sorted(counts), dtype=np.int64)
    values = np.array([counts[c] for c in columns], dtype=np.float64)
    if values.size:
        values /= np.linalg.norm(values)
    return sparse.csr_matrix((values, columns, [0, len(columns)]), shape=(1, n_features))


def char_ngram_rows(texts: list[str], n_features: int) -> sparse.csr_matrix:
    if not texts:
        return sparse.csr_matrix((0, n_features))
    return sparse.vstack([char_ngrams(t, n_features) for t in texts], format="csr")
