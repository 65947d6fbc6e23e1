"""Where index generations live, behind one protocol: folders on disk, or a Chroma server.

A generation is a folder (manifest.json, items.jsonl, keywords/) plus one Chroma
collection of its vectors. The index logic builds a generation with `create`, makes it
readable with `publish`, and makes it live with `swap`, the only step readers notice; it
never asks which kind of store it has.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import chromadb
from chromadb.config import Settings as ChromaSettings
from filelock import FileLock, Timeout

from assistant.index.records import read_manifest
from assistant.jsonl import write_atomic

COLLECTION = "duty_items"
HNSW_EF_SEARCH = 1000
"""Nodes a vector search visits. At Chroma's default (100), the top 80 of 486 items differed by 2–6
ids from one process to the next (a nearer item missed, or the other of two equally near ones):
the same question could get other candidates after a restart. 1,000 visits every item of a few
hundred, and keeps recall high on larger indexes."""
HNSW = {"space": "cosine", "ef_search": HNSW_EF_SEARCH}
POINTER = "CURRENT"
LOCK = "ingest.lock"


class IndexMissing(RuntimeError):
    """No index has been built yet."""


class IngestLocked(RuntimeError):
    """Another ingest holds the lock."""


@dataclass(frozen=True)
class Generation:
    name: str
    manifest: dict


class GenerationStore(Protocol):
    index_dir: Path
    """Local folder: the generations themselves, or a server store's cache of them."""

    def generations(self) -> list[Generation]:
        """Every complete generation, oldest first."""

    def live(self) -> str | None:
        """The generation readers open, or None before the first ingest."""

    def open(self, generation: str) -> Path:
        """The generation's folder for reading."""

    def collection(self, generation: str) -> Any:
        """The generation's Chroma collection for reading."""

    def collection_name(self, generation: str) -> str:
        """The name of the generation's collection, as recorded in its manifest."""

    def create(self, generation: str, copy_from: str | None) -> tuple[Path, Any]:
        """An empty folder and a collection for a new generation (holding `copy_from`'s vectors)."""

    def publish(self, generation: str) -> None:
        """Make a written folder readable as a generation; it is not live yet."""

    def swap(self, generation: str) -> None:
        """Make `generation` live in one atomic step."""

    def remove(self, generation: str) -> None:
        """Delete a generation; removing one that does not exist is not an error."""

    def discard_unfinished(self) -> None:
        """Delete what killed ingests left behind (only called under the lease)."""

    def lease(self) -> AbstractContextManager[None]:
        """Hold the right to build and swap generations; raises IngestLocked if taken."""


def chroma_settings() -> ChromaSettings:
    return ChromaSettings(anonymized_telemetry=False)


class LocalStore:
    """Generations as folders `index_dir/gen-*/` with a Chroma database each; `CURRENT` names the live one."""

    def __init__(self, index_dir: Path, embedding_function: Any):
        self.index_dir = index_dir
        self.embedding_function = embedding_function

    def generations(self) -> list[Generation]:
        folders = sorted(f for f in self.index_dir.glob("gen-*") if (f / "manifest.json").exists())
        return [Generation(f.name, read_manifest(f)) for f in folders]

    def live(self) -> str | None:
        pointer = self.index_dir / POINTER
        return pointer.read_text(encoding="utf-8").strip() if pointer.exists() else None

    def open(self, generation: str) -> Path:
        return self.index_dir / generation

    def collection(self, generation: str) -> Any:
        return self._client(generation).get_collection(COLLECTION, embedding_function=None)

    def collection_name(self, generation: str) -> str:
        return COLLECTION  # one database per generation folder

    def create(self, generation: str, copy_from: str | None) -> tuple[Path, Any]:
        folder = self.index_dir / generation
        folder.mkdir(parents=True)
        if copy_from is not None:
            shutil.copytree(self.index_dir / copy_from / "chroma", folder / "chroma")
        collection = self._client(generation).get_or_create_collection(
            COLLECTION, configuration={"hnsw": HNSW}, embedding_function=self.embedding_function
        )
        if copy_from is not None:  # the copied collection keeps the configuration it was made with
            collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF_SEARCH}})
        return folder, collection

    def publish(self, generation: str) -> None:
        """Nothing to upload: the manifest, written last, already marks the folder complete."""

    def swap(self, generation: str) -> None:
        write_atomic(self.index_dir / POINTER, generation)

    def remove(self, generation: str) -> None:
        shutil.rmtree(self.index_dir / generation, ignore_errors=True)

    def discard_unfinished(self) -> None:
        for folder in self.index_dir.glob("gen-*"):
            if not (folder / "manifest.json").exists() and folder.name != self.live():
                shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def lease(self) -> Iterator[None]:
        with file_lock(self.index_dir):
            yield

    def _client(self, generation: str):
        return chromadb.PersistentClient(path=str(self.index_dir / generation / "chroma"), settings=chroma_settings())


@contextmanager
def file_lock(index_dir: Path) -> Iterator[None]:
    """One ingest per machine and index folder."""
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index_dir / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise IngestLocked(f"another ingest is running on {index_dir} (lock: {lock.lock_file})") from None
    try:
        yield
    finally:
        lock.release()
