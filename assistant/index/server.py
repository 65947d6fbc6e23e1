"""Server mode (`chroma_mode = "http"`): several app instances share one index on a Chroma server.

Everything shared lives on the server, so the instances need no shared disk:

- each generation's vectors are one collection, `duty_items-<generation>`;
- the collection `duty_meta` holds, as documents, each generation's manifest.json and its
  items.jsonl (in chunks), the CURRENT pointer (one record, replaced atomically by an
  upsert) and the ingest lease;
- the keyword index is derived from items.jsonl, so it is not stored: each instance builds
  it once per generation into its local cache `index_dir/<generation>/` (next to copies of
  the manifest and items), and later opens read only local files.

An ingest builds a new generation beside the live one (vectors copied server-side, then
the changes applied), publishes its manifest and items, and only then moves the pointer:
instances keep serving the old generation until they reopen. The lease is a record that is
added only if absent (Chroma ignores adding an existing id), so two instances, even on two
machines, cannot ingest at once; a lease older than `LEASE_SECONDS` belonged to an ingest
that died and is taken over.
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

from assistant import jsonl
from assistant.settings import Settings

META = "duty_meta"
POINTER = "CURRENT"
LEASE = "ingest.lock"
LEASE_SECONDS = 6 * 3600
CHUNK_LINES = 1000
PAGE = 2000
_UNIT = [1.0]  # the meta records need a vector; they are looked up by id, never by similarity


def collection_name(generation: str) -> str:
    from assistant.index.generations import COLLECTION

    return f"{COLLECTION}-{generation}"


def _client(settings: Settings):
    from assistant.index.generations import chroma_client

    return chroma_client(settings, settings.index_dir)


def _meta(settings: Settings):
    return _client(settings).get_or_create_collection(META, embedding_function=None)


def live_generation(settings: Settings) -> str | None:
    found = _meta(settings).get(ids=[POINTER], include=["metadatas"])
    return found["metadatas"][0]["generation"] if found["ids"] else None


def materialize(settings: Settings, generation: str) -> Path:
    """The local cache of a generation: manifest.json, items.jsonl and keywords/, built once."""
    from assistant.index.generations import _write_keywords, items_from_jsonl

    folder = settings.index_dir / generation
    if (folder / "manifest.json").exists():
        return folder
    meta = _meta(settings)
    manifest = meta.get(ids=[f"{generation}/manifest"], include=["documents"])
    if not manifest["ids"]:
        raise RuntimeError(f"generation {generation} is missing on the Chroma server; re-run `duty-assistant ingest`")
    chunks = meta.get(where={"$and": [{"generation": generation}, {"kind": "items"}]}, include=["documents", "metadatas"])
    parts = sorted(zip(chunks["metadatas"], chunks["documents"]), key=lambda p: p[0]["part"])
    staging = settings.index_dir / f".{generation}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    items = "".join(text for _, text in parts)
    (staging / "items.jsonl").write_text(items, encoding="utf-8")
    _write_keywords(staging, items_from_jsonl(items, f"{generation} on the Chroma server"))
    (staging / "manifest.json").write_text(manifest["documents"][0], encoding="utf-8")  # last: marks it complete
    try:
        staging.rename(folder)
    except OSError:  # another process of this instance materialized it first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def new_collection(settings: Settings, generation: str, copy_from: str | None):
    """The generation's collection, holding the previous generation's vectors when given."""
    client = _client(settings)
    collection = client.create_collection(
        collection_name(generation), metadata={"hnsw:space": "cosine"}, embedding_function=None
    )
    if copy_from is not None:
        source = client.get_collection(copy_from, embedding_function=None)
        for offset in range(0, source.count(), PAGE):
            page = source.get(limit=PAGE, offset=offset, include=["embeddings", "documents", "metadatas"])
            if page["ids"]:
                collection.add(
                    ids=page["ids"], embeddings=page["embeddings"],
                    documents=page["documents"], metadatas=page["metadatas"],
                )
    return collection


def publish(settings: Settings, folder: Path) -> None:
    """Upload a finished generation's manifest and items (the pointer still names the old one)."""
    generation = folder.name
    lines = [line + "\n" for _, line in jsonl.lines(jsonl.read_text(folder / "items.jsonl"))]
    chunks = ["".join(lines[i : i + CHUNK_LINES]) for i in range(0, len(lines), CHUNK_LINES)] or [""]
    meta = _meta(settings)
    meta.upsert(
        ids=[f"{generation}/items/{part}" for part in range(len(chunks))],
        embeddings=[_UNIT] * len(chunks),
        documents=chunks,
        metadatas=[{"generation": generation, "kind": "items", "part": part} for part in range(len(chunks))],
    )
    meta.upsert(
        ids=[f"{generation}/manifest"], embeddings=[_UNIT],
        documents=[(folder / "manifest.json").read_text(encoding="utf-8")],
        metadatas=[{"generation": generation, "kind": "manifest", "part": 0}],
    )


def swap(settings: Settings, generation: str) -> None:
    _meta(settings).upsert(
        ids=[POINTER], embeddings=[_UNIT], documents=[generation],
        metadatas=[{"generation": generation, "kind": "pointer", "part": 0}],
    )


def remove_stale(settings: Settings, keep: set[str]) -> None:
    """Drop generations other than `keep` from the server and from the local cache."""
    client = _client(settings)
    prefix = collection_name("")
    for name in (c if isinstance(c, str) else c.name for c in client.list_collections()):
        if name.startswith(prefix) and name[len(prefix) :] not in keep:
            client.delete_collection(name)
    meta = _meta(settings)
    records = meta.get(where={"kind": {"$in": ["items", "manifest"]}}, include=["metadatas"])
    stale = [id_ for id_, m in zip(records["ids"], records["metadatas"]) if m["generation"] not in keep]
    if stale:
        meta.delete(ids=stale)
    for folder in [*settings.index_dir.glob("gen-*"), *settings.index_dir.glob(".gen-*.tmp")]:
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


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
    meta.add(ids=[LEASE], embeddings=[_UNIT], documents=[owner],
             metadatas=[{"generation": "", "kind": "lease", "part": 0, "owner": owner, "since": time.time()}])
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
