"""Items → a searchable index: per-generation item store, Chroma vectors and a BM25 keyword index.

An ingest builds a new generation beside the live one and swaps a pointer, so readers never see
a half-built index; a store keeps the generations (folders on disk, or a shared Chroma server).
"""

from assistant.index.generations import (
    IndexMissing,
    IngestLocked,
    IngestReport,
    KnowledgeBase,
    current_generation,
    dense_text,
    ingest,
    keyword_text,
    make_embedder,
    open_index,
)

__all__ = [
    "IndexMissing",
    "IngestLocked",
    "IngestReport",
    "KnowledgeBase",
    "current_generation",
    "dense_text",
    "ingest",
    "keyword_text",
    "make_embedder",
    "open_index",
]
