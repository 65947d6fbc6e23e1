"""Server mode against a real `chroma run` on 127.0.0.1: ingest, ask, and two instances sharing it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from assistant.index import IngestLocked, ingest
from assistant.index import server as shared_index
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings
from embeddings.cached import CachedEmbedder

QUESTION = "秸秆禁烧归谁管"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Chroma server from the installed package, on a free local port."""
    chroma = Path(sys.executable).parent / "chroma"
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data.parent / "chroma-server.log", "wb")  # noqa: SIM115 - closed after the server stops
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        client = _wait_for(process, port, data.parent / "chroma-server.log")
        yield port, client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_for(process: subprocess.Popen, port: int, log: Path, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            client = chromadb.HttpClient(
                host="127.0.0.1", port=port, settings=ChromaSettings(anonymized_telemetry=False)
            )
            client.heartbeat()
            return client
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)


def _instance(tmp_path_factory, port: int, name: str) -> Settings:
    """An app instance: its own home (no shared disk), the shared server."""
    return Settings(home=tmp_path_factory.mktemp(name), chroma_mode="http", chroma_port=port, corpus=[CORPUS_DIR])


@pytest.fixture(scope="module")
def cached_embedder(assistant):
    """The real model's vectors of the shipped items (from the session index), reused by text."""
    return CachedEmbedder.from_collection(assistant.kb.embedder, assistant.kb.collection)


@pytest.fixture(scope="module")
def first(server, tmp_path_factory, cached_embedder) -> Settings:
    settings = _instance(tmp_path_factory, server[0], "instance-a")
    report = ingest(settings.corpus, settings, embedder=cached_embedder)
    assert report.ok, report.errors
    assert report.embedded == report.added > 400
    return settings


def test_ingest_and_ask_against_the_server(first, assistant, server):
    remote = Assistant.open(first, build=False)
    assert len(remote.kb.items) == len(assistant.kb.items)
    assert remote.kb.collection.count() == len(remote.kb.items)
    answer, local = remote.ask(QUESTION), assistant.ask(QUESTION)
    assert not answer.abstained and answer.citations
    assert [i.id for i in answer.citations] == [i.id for i in local.citations]
    assert not (first.index_dir / "CURRENT").exists()  # the pointer lives on the server
    names = {c if isinstance(c, str) else c.name for c in server[1].list_collections()}
    assert remote.kb.manifest["collection"] in names


def test_a_second_instance_sees_the_same_index(first, server, tmp_path_factory):
    other = _instance(tmp_path_factory, server[0], "instance-b")
    a, b = Assistant.open(first, build=False), Assistant.open(other, build=False)
    assert b.kb.folder.name == a.kb.folder.name  # same generation
    assert b.kb.keywords.ids == a.kb.keywords.ids  # keyword index rebuilt from the shared items
    assert [i.id for i in b.ask(QUESTION).citations] == [i.id for i in a.ask(QUESTION).citations]


def test_an_ingest_by_one_instance_reaches_the_other(first, server, tmp_path_factory, cached_embedder):
    other = _instance(tmp_path_factory, server[0], "instance-c")
    before = Assistant.open(first, build=False)
    town = before.kb.towns[0]
    source = next(p for p in CORPUS_DIR.glob("*.txt") if p.stem == town)
    item = next(i for i in before.kb.items if i.town == town and i.list.value == "basic")
    edited = tmp_path_factory.mktemp("edited") / source.name
    edited.write_text(
        source.read_text(encoding="utf-8").replace(item.title, item.title + "（修订）", 1), encoding="utf-8"
    )

    report = ingest([edited], other, embedder=cached_embedder)
    assert (report.changed, report.added, report.removed, report.embedded) == (1, 0, 0, 1)

    after = Assistant.open(first, build=False)
    assert after.kb.folder.name == report.generation != before.kb.folder.name
    assert after.kb.by_id[item.id].title == item.title + "（修订）"
    prefix = shared_index.collection_name("")
    names = {c if isinstance(c, str) else c.name for c in server[1].list_collections()}
    generations = {n[len(prefix) :] for n in names if n.startswith(prefix)}
    assert generations == {before.kb.folder.name, report.generation}  # live + the one it replaced
    assert before.ask(QUESTION).citations  # an instance still on the old generation keeps answering


def test_concurrent_ingest_across_instances_is_refused(first, server, tmp_path_factory):
    other = _instance(tmp_path_factory, server[0], "instance-d")
    with (
        shared_index.lease(first),
        pytest.raises(IngestLocked, match="another ingest is running on the Chroma server"),
    ):
        ingest(other.corpus, other)
    with shared_index.lease(other):  # released: taken again
        pass
