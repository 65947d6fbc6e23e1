"""Baselines run in the same eval as ours, so every report shows the gap.

- keyword / dense: our single-item answer policy (filters from the question, relative cutoff,
  the best item per township) on one ranking signal, and no structured set handling: every
  question, "第N项" and "列出所有…" included, is answered by similarity search. Our relevance
  gate is calibrated on the sum of both signals, so neither signal alone has a calibrated
  gate: these baselines cite their top items and abstain only when nothing matches at all.
- naive-rag: the way the anchor systems do it: LangChain's RecursiveCharacterTextSplitter
  over the raw document text, dense top-4 chunks, and the table rows inside those chunks as
  citations. It never abstains and answers with the chunks themselves.

Follow-up questions carry no resolved context here: a baseline searches with the earlier
questions and the follow-up joined, as a pipeline without a rewrite step does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter

from assistant.answering.answer import Answer, compose
from assistant.answering.glossary import expand
from assistant.answering.query import Intent, Query
from assistant.answering.retrieve import Hit, Retrieval, Retriever
from assistant.index import KnowledgeBase
from assistant.ingest.parsing import expand_paths
from assistant.items import ListKind, item_id
from assistant.settings import Settings
from embeddings.langchain import LangChainEmbeddings

BASELINES = ("keyword", "dense", "naive-rag")

# The naive pipeline's fixed definition (not tuned): chunks that fit e5-small's 512-token
# window, LangChain's default separators, and the usual top-4.
CHUNK_SIZE = 500
CHUNK_OVERLAP = 50
TOP_CHUNKS = 4


def joined(question: str, history: Sequence[tuple[str, Answer]]) -> str:
    return " ".join([*(q for q, _ in history), question])


class OneSignalRetriever(Retriever):
    """Our single-item retrieval with only the keyword (BM25) or only the dense ranking.

    Hits are scored by reciprocal rank like ours, so the relative cutoff and
    one-item-per-township apply unchanged; every ranked hit counts as relevant. Raw scores are no
    probabilities, so no second duty is offered as about as likely.
    """

    def __init__(self, kb: KnowledgeBase, signal: str, settings: Settings | None = None):
        if signal not in ("keyword", "dense"):
            raise ValueError(f"unknown signal {signal!r}; valid: keyword, dense")
        super().__init__(kb, (settings or kb.settings).model_copy(update={"ambiguity_gap": 0.0}))
        self.signal = signal

    def lookup(self, query: Query) -> Retrieval:
        """No structured answers: '第N项', sets and comparisons go through similarity search too."""
        return self.single(replace(query, intent=Intent.SINGLE))

    enumerate = compare = lookup

    def search(self, query: Query, n: int | None = None) -> list[Hit]:
        n = n or self.settings.candidates
        mask = self._mask(query)
        if not mask.any():
            return []
        text = query.search_text or query.text
        if self.signal == "keyword":
            scores = np.where(mask, self.kb.keywords.scores(expand(text)), -1.0)
            ranked = [
                (self.items[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:n] if scores[i] > 0
            ]
        else:
            nearest = self.kb.dense(self.kb.embedder.embed_query(text), self._where(query), n)
            ranked = [(self.kb.by_id[id_], similarity) for id_, similarity in nearest]
        k = self.settings.rrf_k
        return [
            Hit(item, 1.0 / (k + rank + 1), relevance=value, relevant=True, **{self.signal: value})
            for rank, (item, value) in enumerate(ranked)
        ]


@dataclass
class RetrieverSystem:
    """A baseline answered by a retriever and our extractive composer."""

    name: str
    retriever: Retriever

    def answer(self, question: str, history: Sequence[tuple[str, Answer]] = ()) -> Answer:
        started = time.perf_counter()
        text = joined(question, history)
        answer = compose(text, self.retriever.retrieve(text))
        answer.question = question
        answer.generator = self.name
        answer.timings = {"total": time.perf_counter() - started}
        return answer


@dataclass(frozen=True)
class RowSpan:
    start: int
    end: int
    item_id: str


_ROW = re.compile(r"(\d+)\t")


def row_spans(text: str, towns: Sequence[str]) -> list[RowSpan]:
    """Where each table row of a raw text export lies, and the item it is.

    The township comes from the section title that names it, the list from the latest
    section title, the number from the row's first cell.
    """
    spans: list[RowSpan] = []
    town = kind = None
    offset = 0
    for line in re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text):  # as readers.read_text splits
        stripped = line.strip()
        title_kind = next((k for k in ListKind if stripped.endswith(k.label) and "\t" not in stripped), None)
        if title_kind is not None:
            kind = title_kind
            town = next((t for t in towns if t in stripped), town)
        elif town and kind and (match := _ROW.match(line)):
            spans.append(RowSpan(offset, offset + len(line), item_id(town, kind, int(match.group(1)))))
        offset += len(line)
    return spans


def rows_in(spans: Sequence[RowSpan], start: int, end: int) -> list[str]:
    """Items whose rows overlap [start, end)."""
    return [s.item_id for s in spans if s.start < end and s.end > start]


class NaiveRag:
    """Chunk the raw text, retrieve the top chunks by dense similarity, cite their rows."""

    name = "naive-rag"

    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None):
        self.kb = kb
        settings = settings or kb.settings
        paths = [p for p in expand_paths(settings.corpus) if p.suffix.lower() == ".txt"]
        if not paths:
            raise ValueError("naive-rag needs the raw text exports (*.txt) in the corpus")
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True
        )
        texts = {str(p): p.read_text(encoding="utf-8-sig") for p in paths}
        self.spans = {source: row_spans(text, kb.towns) for source, text in texts.items()}
        chunks = splitter.create_documents(list(texts.values()), metadatas=[{"source": s} for s in texts])
        embeddings = LangChainEmbeddings(kb.embedder)
        self.store = _cached_store(chunks, embeddings, settings.cache_dir, kb.embedder.name)
        self.chunks = len(chunks)

    def answer(self, question: str, history: Sequence[tuple[str, Answer]] = ()) -> Answer:
        started = time.perf_counter()
        chunks = self.store.similarity_search(joined(question, history), k=TOP_CHUNKS)
        ids: dict[str, None] = {}
        for chunk in chunks:
            start = chunk.metadata["start_index"]
            for id_ in rows_in(self.spans[chunk.metadata["source"]], start, start + len(chunk.page_content)):
                ids.setdefault(id_)
        citations = [self.kb.by_id[id_] for id_ in ids if id_ in self.kb.by_id]
        text = "\n\n".join(chunk.page_content for chunk in chunks)
        return Answer(
            question,
            text,
            citations=citations,
            generator=self.name,
            timings={"total": time.perf_counter() - started},
        )


def _cached_store(
    chunks: list[Document], embeddings: LangChainEmbeddings, folder: Path, model: str
) -> InMemoryVectorStore:
    """The chunks' vector store; embedding ~300 chunks takes a minute, so it is kept on disk."""
    digest = hashlib.sha256(
        json.dumps(
            [model, CHUNK_SIZE, CHUNK_OVERLAP, [(c.page_content, c.metadata) for c in chunks]],
            ensure_ascii=False,
            sort_keys=True,
        ).encode("utf-8")
    ).hexdigest()[:16]
    path = folder / f"naive-rag-{digest}.json"
    if path.exists():
        return InMemoryVectorStore.load(str(path), embeddings)
    store = InMemoryVectorStore(embeddings)
    store.add_documents(chunks, ids=[str(i) for i in range(len(chunks))])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    store.dump(str(tmp))
    os.replace(tmp, path)
    return store


def make_baseline(name: str, kb: KnowledgeBase, settings: Settings | None = None):
    if name == "naive-rag":
        return NaiveRag(kb, settings)
    if name in ("keyword", "dense"):
        return RetrieverSystem(name, OneSignalRetriever(kb, name, settings))
    raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")
