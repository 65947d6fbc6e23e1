"""Items → a searchable index: per-generation item store, Chroma vectors and a BM25 keyword index.

An ingest plans the change (`plan`), builds a new generation beside the live one and swaps a
pointer, so readers never see a half-built index; a store (`store`: folders on disk, or
`server`: a shared Chroma server) keeps the generations, the last few of them for rollback.
"""

from assistant.index.generations import (
    IngestReport,
    KnowledgeBase,
    current_generation,
    generations,
    ingest,
    live_generation,
    make_embedder,
    open_index,
    rollback,
)
from assistant.index.records import dense_text, keyword_text
from assistant.index.store import IndexMissing, IngestLocked

__all__ = [
    "IndexMissing",
    "IngestLocked",
    "IngestReport",
    "KnowledgeBase",
    "current_generation",
    "dense_text",
    "generations",
    "ingest",
    "keyword_text",
    "live_generation",
    "make_embedder",
    "open_index",
    "rollback",
]
