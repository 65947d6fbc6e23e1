"""The knowledge base on disk: items, a Chroma collection and a keyword index, per generation.

Layout under `settings.index_dir`:

    CURRENT              name of the live generation (replaced atomically)
    ingest.lock          held while an ingest runs
    gen-<time>-<pid>/    items.jsonl, manifest.json, chroma/, keywords/

An ingest copies the live generation, applies the changes (only new or changed items are
embedded), and swaps CURRENT only when the copy is complete: a crash or a bad document
leaves the previous generation serving.

With `chroma_mode = "http"` the same generations live on a Chroma server that several
instances share, and the folders above are only each instance's cache: see
`assistant.index.server`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from filelock import FileLock, Timeout

from assistant import jsonl
from assistant.index import server as shared_index
from assistant.items import DutyItem, ListKind
from assistant.index.keywords import KeywordIndex
from assistant.ingest.parsing import Document, ParseError, parse_paths
from assistant.ingest.readers import Limits
from assistant.settings import Settings
from embeddings import Embedder, load_embedder

log = logging.getLogger(__name__)

COLLECTION = "duty_items"
FORMAT = 1
Progress = Callable[[int, int], None]


class IndexMissing(RuntimeError):
    """No index has been built yet."""


class IngestLocked(RuntimeError):
    """Another ingest holds the lock."""


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

    @property
    def ok(self) -> bool:
        return not self.errors


def dense_text(item: DutyItem) -> str:
    """What is embedded per item: the title and what the township does about it.

    Measured on the dev questions (dense-only hit@5): title + category + departments 0.88,
    whole rows 0.93, title + township duties / receiver handling 0.96 at half the cost of
    whole rows. Cadres ask about what happens on the ground, which the township's part says.
    """
    parts = [item.title, *item.township_duties, *(r.handling for r in item.receivers)]
    return " ".join(parts)[:DENSE_CHARS]


DENSE_CHARS = 300


def keyword_text(item: DutyItem) -> str:
    """What BM25 sees: the title twice (it matters most), then every other column."""
    parts = [item.title, item.title, item.category, *item.involved_departments]
    parts += item.department_duties + item.township_duties
    parts += [r.handling for r in item.receivers]
    return " ".join(parts)


def _metadata(item: DutyItem) -> dict:
    return {
        "town": item.town,
        "county": item.county,
        "prefecture": item.prefecture,
        "list": item.list.value,
        "number": item.number,
        "category": item.category,
        "departments": "、".join(item.involved_departments),
        "hash": item.content_hash,
    }


def make_embedder(settings: Settings) -> Embedder:
    return load_embedder(
        settings.embedding_backend, settings.embedding_model, settings.query_prefix, settings.document_prefix
    )


def chroma_client(settings: Settings, folder: Path):
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_mode == "http":
        headers = {"Authorization": f"Bearer {settings.chroma_token}"} if settings.chroma_token else None
        return chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, headers=headers, settings=chroma_settings
        )
    return chromadb.PersistentClient(path=str(folder), settings=chroma_settings)


class KnowledgeBase:
    """One loaded generation: the item store, the dense collection and the keyword index."""

    def __init__(self, folder: Path, settings: Settings, embedder: Embedder | None = None):
        self.folder = folder
        self.settings = settings
        self.manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        self.items = read_items(folder / "items.jsonl")
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
        self.collection = chroma_client(settings, folder / "chroma").get_collection(
            self.manifest["collection"], embedding_function=None
        )

    @cached_property
    def towns(self) -> list[str]:
        return list(dict.fromkeys(item.town for item in self.items))

    def dense(self, query_vector: np.ndarray, where: dict | None, n: int) -> list[tuple[str, float]]:
        """Nearest items by cosine similarity, with Chroma's metadata filter."""
        n = min(n, len(self.items))
        if n == 0:
            return []
        result = self.collection.query(
            query_embeddings=[query_vector.tolist()], n_results=n, where=where or None, include=["distances"]
        )
        return [(id_, 1.0 - dist) for id_, dist in zip(result["ids"][0], result["distances"][0])]

    def similarity(self, query_vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """Cosine similarity to given items (vectors are unit length), e.g. keyword-only candidates."""
        if not ids:
            return {}
        stored = self.collection.get(ids=list(ids), include=["embeddings"])
        return {id_: float(np.dot(query_vector, vector)) for id_, vector in zip(stored["ids"], stored["embeddings"])}


def _shared(settings: Settings) -> bool:
    return settings.chroma_mode == "http"


def current_generation(settings: Settings) -> Path:
    if _shared(settings):
        generation = shared_index.live_generation(settings)
        if generation is None:
            raise IndexMissing(f"no index on the Chroma server {settings.chroma_host}:{settings.chroma_port}; "
                               "run `duty-assistant ingest`")
        return shared_index.materialize(settings, generation)
    pointer = settings.index_dir / "CURRENT"
    if not pointer.exists():
        raise IndexMissing(f"no index in {settings.index_dir}; run `duty-assistant ingest`")
    return settings.index_dir / pointer.read_text(encoding="utf-8").strip()


def open_index(settings: Settings, embedder: Embedder | None = None) -> KnowledgeBase:
    return KnowledgeBase(current_generation(settings), settings, embedder)


def ingest(
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    replace: bool = False,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the index up to date with the given documents.

    Each document replaces its township's items; other townships stay unless `replace`
    makes the index hold exactly these documents. A document that fails to parse is
    reported and skipped, and its township keeps its previous items.
    """
    started = time.perf_counter()
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(settings.index_dir / "ingest.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise IngestLocked(f"another ingest is running on {settings.index_dir} (lock: {lock.lock_file})") from None
    try:
        with _server_lease(settings):
            documents, errors = parse_paths(paths, Limits.from_settings(settings))
            documents, conflicts = _unique_towns(documents)
            report = IngestReport(documents=[d.source for d in documents], errors=errors + conflicts)
            if replace and report.errors:
                return report  # replacing would drop the failed documents' townships: change nothing
            _apply(documents, settings, replace, embedder or make_embedder(settings), report, progress)
    finally:
        lock.release()
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _server_lease(settings: Settings) -> Iterator[None]:
    """In server mode, the file lock guards this machine; the lease guards the server."""
    if not _shared(settings):
        yield
        return
    try:
        with shared_index.lease(settings):
            yield
    except shared_index.LeaseHeld as exc:
        raise IngestLocked(f"another ingest is running on the Chroma server: {exc}") from None


def _unique_towns(documents: list[Document]) -> tuple[list[Document], list[ParseError]]:
    seen: dict[str, Document] = {}
    errors = []
    for doc in documents:
        if doc.town in seen:
            errors.append(ParseError(doc.source, 1, f"{doc.town} is also in {seen[doc.town].source}; skipped"))
        else:
            seen[doc.town] = doc
    return list(seen.values()), errors


def _apply(
    documents: list[Document],
    settings: Settings,
    replace: bool,
    embedder: Embedder,
    report: IngestReport,
    progress: Progress | None,
) -> None:
    old_folder = _live_folder(settings)
    try:
        old_items = _load_items(old_folder) if old_folder else {}
    except (jsonl.JsonlError, OSError) as exc:
        if not replace:  # merging into unreadable items would silently drop other townships
            raise RuntimeError(
                f"the live index cannot be read ({exc}); rebuild it with `duty-assistant ingest --replace`"
            ) from None
        log.warning("live index unreadable, rebuilding from scratch: %s", exc)
        old_folder = None
        old_items = {}
    old_manifest = _load_manifest(old_folder) if old_folder else None
    compatible = old_manifest is not None and old_manifest["embedder"] == embedder.name

    new_towns = {doc.town for doc in documents}
    keep = {} if replace else {id_: item for id_, item in old_items.items() if item.town not in new_towns}
    new_items = dict(keep)
    for doc in documents:
        new_items.update((item.id, item) for item in doc.items)

    old_hashes = {id_: item.content_hash for id_, item in old_items.items()} if compatible else {}
    to_embed = [item for id_, item in new_items.items() if old_hashes.get(id_) != item.content_hash]
    to_delete = [id_ for id_ in old_hashes if id_ not in new_items or old_hashes[id_] != new_items[id_].content_hash]
    report.added = sum(id_ not in old_items for id_ in new_items)
    report.changed = sum(id_ in old_items and old_items[id_].content_hash != new_items[id_].content_hash
                         for id_ in new_items)
    report.removed = sum(id_ not in new_items for id_ in old_items)
    report.unchanged = len(new_items) - report.added - report.changed

    if not new_items:
        return  # nothing parsed: an empty index would serve nobody, keep what there is
    if compatible and not (report.added or report.changed or report.removed):
        report.generation = old_folder.name
        return

    generation = f"gen-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}"
    folder = settings.index_dir / generation
    _remove_stale(settings, keep={old_folder})
    try:
        _write_generation(folder, old_folder if compatible else None, new_items, to_embed, to_delete,
                          embedder, settings, documents, old_manifest, progress)
        report.embedded = len(to_embed)
        _swap(settings, generation)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if _shared(settings):
            with suppress(Exception):  # the server may be what failed; the original error matters
                shared_index.remove_stale(settings, keep={f.name for f in (old_folder,) if f})
        raise
    report.generation = generation
    _remove_stale(settings, keep={folder, old_folder})


def _write_generation(
    folder: Path,
    copy_from: Path | None,
    items: dict[str, DutyItem],
    to_embed: Sequence[DutyItem],
    to_delete: Sequence[str],
    embedder: Embedder,
    settings: Settings,
    documents: list[Document],
    old_manifest: dict | None,
    progress: Progress | None,
) -> None:
    folder.mkdir(parents=True)
    if _shared(settings):
        collection_name = shared_index.collection_name(folder.name)
        old = _load_manifest(copy_from)["collection"] if copy_from is not None else None
        collection = shared_index.new_collection(settings, folder.name, old)
    else:
        collection_name = COLLECTION
        if copy_from is not None:
            shutil.copytree(copy_from / "chroma", folder / "chroma")
        collection = chroma_client(settings, folder / "chroma").get_or_create_collection(
            COLLECTION, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
    if to_delete:
        collection.delete(ids=list(to_delete))
    batch = 64
    for start in range(0, len(to_embed), batch):
        chunk = to_embed[start : start + batch]
        vectors = embedder.embed_documents([dense_text(item) for item in chunk])
        collection.upsert(
            ids=[item.id for item in chunk],
            embeddings=vectors,
            documents=[dense_text(item) for item in chunk],
            metadatas=[_metadata(item) for item in chunk],
        )
        if progress:
            progress(start + len(chunk), len(to_embed))
    ordered = sorted(items.values(), key=_order)
    jsonl.write(folder / "items.jsonl", (item.to_dict() for item in ordered))
    _write_keywords(folder, ordered)
    sources = {d["town"]: d for d in (old_manifest or {}).get("documents", []) if d["town"] in {i.town for i in ordered}}
    for doc in documents:
        sources[doc.town] = {
            "source": doc.source, "town": doc.town, "county": doc.county, "prefecture": doc.prefecture,
            "counts": {kind.value: doc.count(kind) for kind in ListKind},
        }
    manifest = {
        "format": FORMAT,
        "collection": collection_name,
        "embedder": embedder.name,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "items": len(ordered),
        "documents": sorted(sources.values(), key=lambda d: d["town"]),
    }
    if collection.count() != len(ordered):
        raise RuntimeError(f"index holds {collection.count()} vectors for {len(ordered)} items")
    jsonl.write_atomic(folder / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
    if _shared(settings):
        shared_index.publish(settings, folder)


def _write_keywords(folder: Path, items: Sequence[DutyItem]) -> None:
    KeywordIndex.build([i.id for i in items], [keyword_text(i) for i in items]).save(folder / "keywords")


def _order(item: DutyItem) -> tuple:
    return item.county, item.town, list(ListKind).index(item.list), item.number


def _swap(settings: Settings, generation: str) -> None:
    if _shared(settings):
        shared_index.swap(settings, generation)
    else:
        jsonl.write_atomic(settings.index_dir / "CURRENT", generation)


def _live_folder(settings: Settings) -> Path | None:
    try:
        folder = current_generation(settings)
    except IndexMissing:
        return None
    return folder if (folder / "manifest.json").exists() else None


def _remove_stale(settings: Settings, keep: set[Path | None]) -> None:
    """Drop generations no reader can be using: neither live nor the one just replaced."""
    if _shared(settings):
        shared_index.remove_stale(settings, keep={f.name for f in keep if f})
        return
    for folder in settings.index_dir.glob("gen-*"):
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _load_items(folder: Path) -> dict[str, DutyItem]:
    return {item.id: item for item in read_items(folder / "items.jsonl")}


def _load_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def items_from_jsonl(text: str, source: str | Path = "items.jsonl") -> list[DutyItem]:
    """Items from JSONL text; a damaged line raises a JsonlError naming source:line."""
    items = []
    for number, data in jsonl.parse(text, source):
        try:
            items.append(DutyItem.from_dict(data))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise jsonl.JsonlError(source, number, f"not a duty item ({type(exc).__name__}: {exc})") from None
    return items


def read_items(path: Path) -> list[DutyItem]:
    return items_from_jsonl(jsonl.read_text(path), path)
