"""Reuse vectors the same model already computed, keyed by text.

Documents: for re-ingesting identical texts (tests that build a second index of the same lists,
and the scale benchmark, whose synthetic townships reuse the real items' texts). Queries: for
training, which scores the same ~3,500 bank questions once more after embedding them for the
duty classifier (42 of the 56 ms a candidate search costs is the query's embedding). The
vectors are the wrapped model's own, so results are the ones the model would give.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import Embedder


class CachedEmbedder(Embedder):
    def __init__(
        self,
        inner: Embedder,
        vectors: dict[str, np.ndarray] | None = None,
        queries: dict[str, np.ndarray] | None = None,
    ):
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.batch_size = inner.batch_size
        self.vectors = dict(vectors or {})
        self.queries = dict(queries or {})
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
        return self._reuse(texts, self.vectors, self.inner.embed_documents)

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._reuse(texts, self.queries, self.inner.embed_queries)

    def _reuse(
        self, texts: list[str], known: dict[str, np.ndarray], embed: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            self.misses += len(missing)
            known.update(zip(missing, embed(missing)))
        return np.stack([known[t] for t in texts])
