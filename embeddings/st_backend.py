"""Optional backend: any sentence-transformers model already on disk.

It never downloads: the model must be a local directory or already sit in the
Hugging Face cache. sentence-transformers (and torch) are an optional extra, so
they are imported only when a model is first needed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from .base import Embedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_INSTALL_HINT = (
    "the sentence-transformers backend needs the optional 'st' extra: "
    "run `pip install torch==2.13.0` first, then `pip install -e .[st]`"
)

# Models are large and slow to load, so each is loaded once per process and
# shared by every embedder that names it.
_lock = threading.Lock()
_models: dict[str, SentenceTransformer] = {}


def _load(model: str) -> SentenceTransformer:
    with _lock:
        if model not in _models:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as error:
                raise ImportError(_INSTALL_HINT) from error
            _models[model] = SentenceTransformer(model, local_files_only=True, device="cpu")
        return _models[model]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model with optional query and document prefixes.

    Prefixes are passed explicitly rather than taken from the model's saved
    prompts, so the settings alone decide how texts are embedded (e.g. e5 wants
    ``"query: "``/``"passage: "``, bge-small-zh wants
    ``"为这个句子生成表示以用于检索相关文章："`` before queries only).
    """

    def __init__(
        self,
        model: str,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.name = f"sentence-transformers:{model}"
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size

    @property
    def dimension(self) -> int:
        dimension = _load(self.model).get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"{self.model} does not declare an embedding dimension")
        return dimension

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.document_prefix)

    def _encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        return _load(self.model).encode(
            texts,
            prompt=prefix,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
