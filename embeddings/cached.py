"""Reuse document vectors the same model already computed, keyed by text.

For re-ingesting identical texts (tests that build a second index of the same lists, and
the scale benchmark, whose synthetic townships reuse the real items' texts): the vectors
are the wrapped model's own, so the index is the one the model would build. Queries
always go to the model.
"""

from __future__ import annotations

import numpy as np

from .base import Embedder


class CachedEmbedder(Embedder):
    def __init__(self, inner: Embedder, vectors: dict[str, np.ndarray] | None = None):
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.batch_size = inner.batch_size
        self.vectors = dict(vectors or {})
        self.misses = 0  # texts the model had to embed

    @classmethod
    def from_collection(cls, inner: Embedder, collection) -> CachedEmbedder:
        """Vectors of a Chroma collection whose documents are the embedded texts."""
        found = collection.get(include=["embeddings", "documents"])
        vectors = {text: np.asarray(v, dtype=np.float32) for text, v in zip(found["documents"], found["embeddings"])}
        return cls(inner, vectors)

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            self.misses += len(missing)
            self.vectors.update(zip(missing, self.inner.embed_documents(missing)))
        return np.stack([self.vectors[t] for t in texts])

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)
