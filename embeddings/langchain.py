"""LangChain adapter, so LangChain vector stores and retrievers can use our embedders."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from .base import Embedder


class LangChainEmbeddings(Embeddings):
    """``langchain_core`` ``Embeddings`` over an ``Embedder``; returns plain float lists."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()
