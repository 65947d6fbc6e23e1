"""Server store (`chroma_mode = "http"`): several app instances share one index on a Chroma server.

Everything shared lives on the server, so the instances need no shared disk:

- each generation's vectors are one collection, `duty_items-<generation>`;
- the collection `duty_meta` holds, as documents, each generation's manifest.json and its
  items.jsonl (in chunks), the CURRENT pointer (one record, replaced atomically by an
  upsert) and the ingest lease;
- the keyword index is derived from items.jsonl, so it is not stored: each instance builds
  it once per generation into its local cache `index_dir/<generation>/` (next to copies of
  the manifest and items), and later opens read only local files.

A new generation is built beside the live one (vectors copied server-side, then the changes
applied), its manifest and items are uploaded, and only then the pointer moves: instances
keep serving the old generation until they reopen. The lease is a record that is added only
if absent (Chroma ignores adding an existing id), so two instances, even on two machines,
cannot ingest at once; a lease older than `LEASE_SECONDS` belonged to an ingest that died
and is taken over.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chromadb

from assistant import jsonl
from assistant.index.records import items_from_jsonl, write_keywords
from assistant.index.store import COLLECTION, HNSW, Generation, IngestLocked, chroma_settings, file_lock
from assistant.settings import Settings

META = "duty_meta"
POINTER = "CURRENT"
LEASE = "ingest.lock"
LEASE_SECONDS = 6 * 3600
CHUNK_LINES = 1000
PAGE = 2000
_UNIT = [1.0]  # the meta records need a vector; they are looked up by id, never by similarity


def collection_name(generation: str) -> str:
    return f"{COLLECTION}-{generation}"


def client(settings: Settings):
    headers = {"Authorization": f"Bearer {settings.chroma_token}"} if settings.chroma_token else None
    return chromadb.HttpClient(
        host=settings.chroma_host, port=settings.chroma_port, headers=headers, settings=chroma_settings()
    )


def _meta(settings: Settings):
    return client(settings).get_or_create_collection(META, embedding_function=None)


class ServerStore:
    """Generations on a Chroma server; `index_dir` is this instance's cache of their files."""

    def __init__(self, settings: Settings, embedding_function: Any):
        self.settings = settings
        self.index_dir = settings.index_dir
        self.embedding_function = embedding_function

    def generations(self) -> list[Generation]:
        found = _meta(self.settings).get(where={"kind": "manifest"}, include=["documents", "metadatas"])
        pairs = sorted(zip(found["metadatas"], found["documents"]), key=lambda p: p[0]["generation"])
        return [Generation(m["generation"], json.loads(text)) for m, text in pairs]

    def live(self) -> str | None:
        found = _meta(self.settings).get(ids=[POINTER], include=["metadatas"])
        return found["metadatas"][0]["generation"] if found["ids"] else None

    def open(self, generation: str) -> Path:
        """The local cache of a generation: manifest.json, items.jsonl and keywords/, built once."""
        folder = self.index_dir / generation
        if (folder / "manifest.json").exists():
            return folder
        meta = _meta(self.settings)
        manifest = meta.get(ids=[f"{generation}/manifest"], include=["documents"])
        if not manifest["ids"]:
            raise RuntimeError(
                f"generation {generation} is missing on the Chroma server; re-run `duty-assistant ingest`"
            )
        chunks = meta.get(
            where={"$and": [{"generation": generation}, {"kind": "items"}]}, include=["documents", "metadatas"]
        )
        parts = sorted(zip(chunks["metadatas"], chunks["documents"]), key=lambda p: p[0]["part"])
        staging = self.index_dir / f".{generation}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        items = "".join(text for _, text in parts)
        (staging / "items.jsonl").write_text(items, encoding="utf-8")
        write_keywords(staging, items_from_jsonl(items, f"{generation} on the Chroma server"))
        (staging / "manifest.json").write_text(manifest["documents"][0], encoding="utf-8")  # last: complete
        try:
            staging.rename(folder)
        except OSError:  # another process of this instance materialized it first
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def collection(self, generation: str) -> Any:
        return client(self.settings).get_collection(collection_name(generation), embedding_function=None)

    def collection_name(self, generation: str) -> str:
        return collection_name(generation)

    def create(self, generation: str, copy_from: str | None) -> tuple[Path, Any]:
        """A local folder to write into, and a collection holding `copy_from`'s vectors (copied server-side)."""
        folder = self.index_dir / generation
        folder.mkdir(parents=True)
        chroma = client(self.settings)
        collection = chroma.create_collection(
            collection_name(generation),
            configuration={"hnsw": HNSW},
            embedding_function=self.embedding_function,
        )
        if copy_from is not None:
            source = chroma.get_collection(collection_name(copy_from), embedding_function=None)
            for offset in range(0, source.count(), PAGE):
                page = source.get(limit=PAGE, offset=offset, include=["embeddings", "documents", "metadatas"])
                if page["ids"]:
                    collection.add(
                        ids=page["ids"],
                        embeddings=page["embeddings"],
                        documents=page["documents"],
                        metadatas=page["metadatas"],
                    )
        return folder, collection

    def publish(self, generation: str) -> None:
        """Upload a finished generation's manifest and items (the pointer still names the old one)."""
        folder = self.index_dir / generation
        lines = [line + "\n" for _, line in jsonl.lines(jsonl.read_text(folder / "items.jsonl"))]
        chunks = ["".join(lines[i : i + CHUNK_LINES]) for i in range(0, len(lines), CHUNK_LINES)] or [""]
        meta = _meta(self.settings)
        meta.upsert(
            ids=[f"{generation}/items/{part}" for part in range(len(chunks))],
            embeddings=[_UNIT] * len(chunks),
            documents=chunks,
            metadatas=[{"generation": generation, "kind": "items", "part": part} for part in range(len(chunks))],
        )
        meta.upsert(
            ids=[f"{generation}/manifest"],
            embeddings=[_UNIT],
            documents=[(folder / "manifest.json").read_text(encoding="utf-8")],
            metadatas=[{"generation": generation, "kind": "manifest", "part": 0}],
        )

    def swap(self, generation: str) -> None:
        _meta(self.settings).upsert(
            ids=[POINTER],
            embeddings=[_UNIT],
            documents=[generation],
            metadatas=[{"generation": generation, "kind": "pointer", "part": 0}],
        )

    def remove(self, generation: str) -> None:
        chroma = client(self.settings)
        if collection_name(generation) in _collection_names(chroma):
            chroma.delete_collection(collection_name(generation))
        meta = _meta(self.settings)
        records = meta.get(where={"generation": generation}, include=[])
        if records["ids"]:
            meta.delete(ids=records["ids"])
        shutil.rmtree(self.index_dir / generation, ignore_errors=True)

    def discard_unfinished(self) -> None:
        """Collections without a manifest, local folders of generations the server lacks, staging folders."""
        complete = {g.name for g in self.generations()} | {self.live()}
        prefix = collection_name("")
        for name in _collection_names(client(self.settings)):
            if name.startswith(prefix) and name[len(prefix) :] not in complete:
                self.remove(name[len(prefix) :])
        for folder in [*self.index_dir.glob("gen-*"), *self.index_dir.glob(".gen-*.tmp")]:
            if folder.name not in complete:
                shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def lease(self) -> Iterator[None]:
        """The file lock guards this machine; the server lease guards every instance."""
        with file_lock(self.index_dir):
            try:
                with lease(self.settings):
                    yield
            except LeaseHeld as exc:
                raise IngestLocked(f"another ingest is running on the Chroma server: {exc}") from None


def _collection_names(chroma) -> list[str]:
    return [c if isinstance(c, str) else c.name for c in chroma.list_collections()]


class LeaseHeld(RuntimeError):
    pass


@contextmanager
def lease(settings: Settings) -> Iterator[None]:
    """Hold the server-wide ingest lease for the duration of the block."""
    meta = _meta(settings)
    owner = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    holder = _lease_holder(meta)
    if holder and time.time() - holder["since"] > LEASE_SECONDS:
        meta.delete(ids=[LEASE])
    meta.add(
        ids=[LEASE],
        embeddings=[_UNIT],
        documents=[owner],
        metadatas=[{"generation": "", "kind": "lease", "part": 0, "owner": owner, "since": time.time()}],
    )
    holder = _lease_holder(meta)
    if holder is None or holder["owner"] != owner:
        since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if holder else "?"
        raise LeaseHeld(f"{holder['owner'] if holder else 'another instance'} (since {since})")
    try:
        yield
    finally:
        if (_lease_holder(meta) or {}).get("owner") == owner:
            meta.delete(ids=[LEASE])


def _lease_holder(meta) -> dict | None:
    found = meta.get(ids=[LEASE], include=["metadatas"])
    return found["metadatas"][0] if found["ids"] else None
