"""The knowledge base: items, a Chroma collection and a keyword index, per generation.

An ingest plans the change against the live generation (`assistant.index.plan`), builds a
new generation beside it in the store (vectors copied, only new or changed items
embedded), and swaps the live pointer only when the new one is complete: a crash or a bad
document leaves the previous generation serving. The last `keep_generations` generations
stay, so any of them can be made live again (`rollback`).

Where generations live is the store's business (`assistant.index.store`): folders on disk,
or a Chroma server shared by several instances (`assistant.index.server`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from assistant.index.keywords import KeywordIndex
from assistant.index.plan import Plan, plan_change
from assistant.index.records import (
    dense_text,
    items_to_jsonl,
    metadata,
    read_items,
    read_manifest,
    write_keywords,
)
from assistant.index.server import ServerStore
from assistant.index.store import GenerationStore, IndexMissing, LocalStore
from assistant.ingest.parsing import Document, ParseError, parse_paths
from assistant.ingest.readers import Limits
from assistant.items import DutyItem, ListKind
from assistant.jsonl import write_atomic
from assistant.settings import Settings
from embeddings import Embedder, load_embedder
from embeddings.chroma import ChromaEmbeddingFunction

log = logging.getLogger(__name__)

FORMAT = 2  # 2: collections carry the registered embedding function
BATCH = 64
Progress = Callable[[int, int], None]
Annotate = Callable[[Mapping[str, DutyItem], Plan], dict]
"""Extra manifest fields computed from the live items and the plan, under the lease."""


@dataclass
class IngestReport:
    documents: list[str] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    seconds: float = 0.0
    errors: list[ParseError] = field(default_factory=list)
    generation: str = ""
    previous: str | None = None  # the live generation before this ingest

    @property
    def ok(self) -> bool:
        return not self.errors


def make_embedder(settings: Settings) -> Embedder:
    return load_embedder(
        settings.embedding_backend, settings.embedding_model, settings.query_prefix, settings.document_prefix
    )


def open_store(settings: Settings) -> GenerationStore:
    """The store `chroma_mode` selects; the one place that knows both kinds."""
    function = ChromaEmbeddingFunction(
        settings.embedding_backend, settings.embedding_model, settings.query_prefix, settings.document_prefix
    )
    if settings.chroma_mode == "http":
        return ServerStore(settings, function)
    return LocalStore(settings.index_dir, function)


class KnowledgeBase:
    """One loaded generation: the item store, the dense collection and the keyword index."""

    def __init__(self, folder: Path, collection: Any, settings: Settings, embedder: Embedder | None = None):
        self.folder = folder
        self.settings = settings
        self.manifest = read_manifest(folder)
        self.items = read_items(folder)
        self.by_id = {item.id: item for item in self.items}
        self.keywords = KeywordIndex.load(folder / "keywords")
        if self.keywords.ids != [item.id for item in self.items]:
            raise RuntimeError(f"{folder}: keyword index does not match items.jsonl; re-run ingest")
        self.embedder = embedder or make_embedder(settings)
        if self.manifest["embedder"] != self.embedder.name:
            raise RuntimeError(
                f"index was built with {self.manifest['embedder']}, settings ask for {self.embedder.name}; "
                "re-run `duty-assistant ingest`"
            )
        self.collection = collection
        self._vectors: dict[str, np.ndarray] = {}  # item vectors fetched so far: a generation never changes

    @property
    def generation(self) -> str:
        return self.folder.name

    @cached_property
    def towns(self) -> list[str]:
        return list(dict.fromkeys(item.town for item in self.items))

    def dense(self, query_vector: np.ndarray, where: dict | None, n: int) -> list[tuple[str, float]]:
        """Nearest items by cosine similarity, with Chroma's metadata filter; equal scores in id
        order. The same duty in two townships often has the same text, so the same vector: which
        twin Chroma returned at the n-th place changed from process to process (4 of 40 ids for
        "低保谁审批"), and with it the candidates. Twice n are fetched and the first n kept."""
        n = min(n, len(self.items))
        if n == 0:
            return []
        result = self.collection.query(
            query_embeddings=[query_vector.tolist()],
            n_results=min(2 * n, len(self.items)),
            where=where or None,
            include=["distances"],
        )
        found = sorted(zip(result["ids"][0], result["distances"][0]), key=lambda pair: (round(pair[1], 6), pair[0]))
        return [(id_, 1.0 - dist) for id_, dist in found[:n]]

    def similarity(self, query_vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """Cosine similarity to given items (vectors are unit length), e.g. keyword-only candidates.
        Each item's vector is fetched from Chroma once (a `get` cost 3 ms of a question's ~20 ms;
        all 486 shipped items' vectors take 1.5 MB)."""
        missing = [id_ for id_ in dict.fromkeys(ids) if id_ not in self._vectors]
        if missing:
            stored = self.collection.get(ids=missing, include=["embeddings"])
            self._vectors.update(zip(stored["ids"], stored["embeddings"]))
        return {id_: float(np.dot(query_vector, self._vectors[id_])) for id_ in ids if id_ in self._vectors}


def live_generation(settings: Settings) -> str | None:
    """The live generation's name: cheap enough to check on every request."""
    return open_store(settings).live()


def current_generation(settings: Settings) -> Path:
    store = open_store(settings)
    generation = store.live()
    if generation is None:
        where = (
            f"the Chroma server {settings.chroma_host}:{settings.chroma_port}"
            if settings.chroma_mode == "http"
            else str(settings.index_dir)
        )
        raise IndexMissing(f"no index in {where}; run `duty-assistant ingest`")
    return store.open(generation)


def open_index(settings: Settings, embedder: Embedder | None = None) -> KnowledgeBase:
    store = open_store(settings)
    folder = current_generation(settings)
    return KnowledgeBase(folder, store.collection(folder.name), settings, embedder)


def generations(settings: Settings) -> tuple[list[Any], str | None]:
    """Every kept generation (oldest first) with its manifest, and the live one's name."""
    store = open_store(settings)
    return store.generations(), store.live()


def rollback(settings: Settings, generation: str | None = None) -> tuple[str, str]:
    """Make a kept generation live again (default: the one before the live one); (before, after)."""
    store = open_store(settings)
    with store.lease():
        live = store.live()
        names = [g.name for g in store.generations()]
        if generation is None:
            older = [name for name in names if live is None or name < live]
            if not older:
                raise ValueError("没有更早的索引版本可以回滚")
            generation = older[-1]
        if generation not in names:
            raise ValueError(f"没有索引版本 {generation}；可用的版本：{'、'.join(names) or '无'}")
        if generation == live:
            raise ValueError(f"{generation} 已是当前版本")
        store.open(generation)  # a server store's cache is filled before readers are pointed at it
        store.swap(generation)
    return live or "", generation


def ingest(
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    replace: bool = False,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    user: str = "",
    annotate: Annotate | None = None,
) -> IngestReport:
    """Bring the index up to date with the given documents.

    Each document replaces its township's items; other townships stay unless `replace`
    makes the index hold exactly these documents. A document that fails to parse is
    reported and skipped, and its township keeps its previous items.
    """
    started = time.perf_counter()
    store = open_store(settings)
    with store.lease():
        documents, errors = parse_paths(paths, Limits.from_settings(settings))
        documents, conflicts = _unique_towns(documents)
        report = IngestReport(documents=[d.source for d in documents], errors=errors + conflicts)
        if not (replace and report.errors):  # replacing would drop the failed documents' townships
            _apply(
                store,
                documents,
                settings,
                replace,
                embedder or make_embedder(settings),
                report,
                progress,
                user,
                annotate,
            )
    report.seconds = time.perf_counter() - started
    return report


def _unique_towns(documents: list[Document]) -> tuple[list[Document], list[ParseError]]:
    seen: dict[str, Document] = {}
    errors = []
    for doc in documents:
        if doc.town in seen:
            errors.append(ParseError(doc.source, 1, f"{doc.town} is also in {seen[doc.town].source}; skipped"))
        else:
            seen[doc.town] = doc
    return list(seen.values()), errors


def live_state(store: GenerationStore, *, replace: bool = True) -> tuple[str | None, dict | None, dict[str, DutyItem]]:
    """The live generation's name, manifest and items; (None, None, {}) if there is none.

    An unreadable live generation is rebuilt from scratch only when the ingest replaces
    everything: merging new documents into it would silently drop the other townships.
    """
    live = store.live()
    if live is None:
        return None, None, {}
    try:
        folder = store.open(live)
        return live, read_manifest(folder), {item.id: item for item in read_items(folder)}
    except (OSError, RuntimeError, ValueError) as exc:
        if not replace:
            raise RuntimeError(
                f"the live index cannot be read ({exc}); rebuild it with `duty-assistant ingest --replace`"
            ) from None
        log.warning("live generation %s is unreadable; building a new one from scratch", live, exc_info=True)
        return None, None, {}


def _apply(
    store: GenerationStore,
    documents: list[Document],
    settings: Settings,
    replace: bool,
    embedder: Embedder,
    report: IngestReport,
    progress: Progress | None,
    user: str,
    annotate: Annotate | None,
) -> None:
    live, old_manifest, old_items = live_state(store, replace=replace)
    report.previous = live
    reuse = (
        old_manifest is not None and old_manifest["embedder"] == embedder.name and old_manifest.get("format") == FORMAT
    )
    plan = plan_change(old_items, documents, replace=replace, reuse_vectors=reuse)
    report.added, report.changed, report.removed = len(plan.added), len(plan.changed), len(plan.removed)
    report.unchanged = plan.unchanged
    if not plan.items:
        return  # nothing parsed: an empty index would serve nobody, keep what there is
    if reuse and plan.empty:
        report.generation = live or ""
        return

    store.discard_unfinished()
    generation = f"gen-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}"
    try:
        folder, collection = store.create(generation, live if reuse else None)
        _write_vectors(collection, plan, embedder, progress)
        (folder / "items.jsonl").write_text(items_to_jsonl(list(plan.items.values())), encoding="utf-8")
        write_keywords(folder, list(plan.items.values()))
        if collection.count() != len(plan.items):
            raise RuntimeError(f"index holds {collection.count()} vectors for {len(plan.items)} items")
        manifest = _manifest(generation, plan, documents, old_manifest, embedder, store, live, user, report)
        if annotate is not None:
            manifest.update(annotate(old_items, plan))
        write_atomic(folder / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        store.publish(generation)
        report.embedded = len(plan.to_embed)
        store.swap(generation)
    except BaseException:
        with suppress(Exception):  # the store may be what failed; the original error matters
            store.remove(generation)
        raise
    report.generation = generation
    _retain(store, settings.keep_generations, generation)


def _write_vectors(collection: Any, plan: Plan, embedder: Embedder, progress: Progress | None) -> None:
    if plan.to_delete:
        collection.delete(ids=list(plan.to_delete))
    for start in range(0, len(plan.to_embed), BATCH):
        chunk = plan.to_embed[start : start + BATCH]
        texts = [dense_text(item) for item in chunk]
        collection.upsert(
            ids=[item.id for item in chunk],
            embeddings=embedder.embed_documents(texts),
            documents=texts,
            metadatas=[metadata(item) for item in chunk],
        )
        if progress:
            progress(start + len(chunk), len(plan.to_embed))


def _manifest(
    generation: str,
    plan: Plan,
    documents: list[Document],
    old_manifest: dict | None,
    embedder: Embedder,
    store: GenerationStore,
    previous: str | None,
    user: str,
    report: IngestReport,
) -> dict:
    towns = {item.town for item in plan.items.values()}
    sources = {d["town"]: d for d in (old_manifest or {}).get("documents", []) if d["town"] in towns}
    for doc in documents:
        sources[doc.town] = {
            "source": doc.source,
            "sha256": file_sha256(doc.source),
            "town": doc.town,
            "county": doc.county,
            "prefecture": doc.prefecture,
            "counts": {kind.value: doc.count(kind) for kind in ListKind},
        }
    return {
        "format": FORMAT,
        "generation": generation,
        "collection": store.collection_name(generation),
        "embedder": embedder.name,
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "published_by": user,
        "previous": previous,
        "items": len(plan.items),
        "change": {
            "added": len(plan.added),
            "changed": len(plan.changed),
            "removed": len(plan.removed),
            "unchanged": plan.unchanged,
            "embedded": len(plan.to_embed),
        },
        "documents": sorted(sources.values(), key=lambda d: d["town"]),
    }


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _retain(store: GenerationStore, keep: int, live: str) -> None:
    """Keep the newest `keep` generations (and always the live one); readers of older ones have moved on."""
    names = [g.name for g in store.generations()]
    for name in names[: max(0, len(names) - keep)]:
        if name != live:
            store.remove(name)
