"""Situation questions per duty: the everyday words in which people ask about a duty.

Cadres describe what happened ("地里有人烧麦草冒黑烟"), not the duty's administrative term
(秸秆禁烧), and such a question shares almost no words with the item. Every distinct duty carries
situation questions as data (`assistant/data/situations.jsonl`, keyed by list + title); an item
inherits the questions of the entry whose title matches its own (`assistant.titles`), so the same
duty in a newly ingested township picks them up without editing the data. The questions are
embedded and keyword-indexed; a hit on a question scores the items that inherit it.

Measured on the dev split before the learned gate: adding the two situation signals to fusion
lifted low-overlap single-item recall@1 (see README "Measured"). The first 13 questions of each
duty leaned on its first clause; 5 more per duty were written for the clauses they left out, then
reviewed so that none asks for a figure or procedure the lists never hold (half had: "最多能给多少钱",
"要带啥"; as in-scope examples they taught the figure head to answer such questions). On round
`u` of the bank (situations from any clause, never trained on) single-item 0.829 -> 0.833; the
rest of dev unchanged within refit noise.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.index.keywords import KeywordIndex
from assistant.items import DutyItem, ListKind
from assistant.titles import THRESHOLD, similarity
from embeddings import Embedder

SITUATIONS_FILE = Path(__file__).parents[1] / "data" / "situations.jsonl"
CROSS_LIST_THRESHOLD = 0.8
"""A duty moved between lists (coordinated → withdrawn) keeps its situations only when its title
is nearly unchanged."""


class SituationsError(ValueError):
    """A malformed line of the situations file; the message names file and line."""


@dataclass(frozen=True)
class Entry:
    list: ListKind
    title: str
    questions: tuple[str, ...]

    @property
    def key(self) -> str:
        """Names the duty in models learned from the entries (the duty classifier)."""
        return f"{self.list.value}|{self.title}"


def load_entries(path: Path = SITUATIONS_FILE) -> list[Entry]:
    entries = []
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            questions = tuple(q.strip() for q in data["questions"] if isinstance(q, str) and q.strip())
            entry = Entry(ListKind(data["list"]), str(data["title"]), questions)
        except (ValueError, KeyError, TypeError) as exc:
            raise SituationsError(f"{path}:{number}: {type(exc).__name__}: {exc}") from None
        if not entry.questions:
            raise SituationsError(f"{path}:{number}: questions: empty")
        entries.append(entry)
    return entries


def inherit(items: Sequence[DutyItem], entries: Sequence[Entry]) -> list[Entry | None]:
    """The entry each item inherits (aligned with `items`): the best match of its title."""
    exact = {(e.list, e.title): e for e in entries}
    by_list: dict[ListKind, list[Entry]] = {}
    for each in entries:
        by_list.setdefault(each.list, []).append(each)
    found: list[Entry | None] = []
    for item in items:
        entry: Entry | None = exact.get((item.list, item.title)) or _best(
            item.title, by_list.get(item.list, []), THRESHOLD
        )
        if entry is None:
            entry = _best(item.title, entries, CROSS_LIST_THRESHOLD)
        found.append(entry)
    return found


def _best(title: str, entries: Sequence[Entry], threshold: float) -> Entry | None:
    scored = [(similarity(title, e.title), k) for k, e in enumerate(entries)]
    score, k = max(scored, default=(0.0, -1))
    return entries[k] if score >= threshold else None


class SituationIndex:
    """Distinct questions, the items that inherit each, their vectors and a BM25 index."""

    def __init__(
        self, questions: list[str], owners: list[list[int]], vectors: np.ndarray, n_items: int, keys: list[str]
    ):
        self.questions = questions
        self.keys = keys  # per item: the key of the entry it inherits ("" for none)
        self.n_items = n_items
        self._question_of = np.array([q for q, own in enumerate(owners) for _ in own], dtype=np.int64)
        self._item_of = np.array([i for own in owners for i in own], dtype=np.int64)
        self.vectors = vectors
        self.has = np.zeros(n_items, dtype=bool)  # which items inherit any question
        self.has[self._item_of] = True
        self.keywords = KeywordIndex.build([str(q) for q in range(len(questions))], questions) if questions else None

    @classmethod
    def build(
        cls, items: Sequence[DutyItem], embedder: Embedder, cache_dir: Path, entries: Sequence[Entry] | None = None
    ) -> SituationIndex:
        per_item = inherit(items, load_entries() if entries is None else entries)
        position: dict[str, int] = {}
        owners: list[list[int]] = []
        for i, entry in enumerate(per_item):
            for question in entry.questions if entry else ():
                if question not in position:
                    position[question] = len(owners)
                    owners.append([])
                owners[position[question]].append(i)
        texts = list(position)
        keys = [entry.key if entry else "" for entry in per_item]
        return cls(texts, owners, cached_vectors(texts, embedder, cache_dir), len(items), keys)

    def best(self, query_vector: np.ndarray, query_text: str) -> tuple[np.ndarray, np.ndarray]:
        """Per item: the best cosine of its questions to the query, and their best BM25 score."""
        dense = np.zeros(self.n_items, dtype=np.float32)
        keyword = np.zeros(self.n_items, dtype=np.float32)
        if self.keywords is None:
            return dense, keyword
        similarities = self.vectors @ query_vector.astype(np.float32)
        np.maximum.at(dense, self._item_of, similarities[self._question_of])
        scores = self.keywords.scores(query_text)
        np.maximum.at(keyword, self._item_of, scores[self._question_of])
        return dense, keyword


def cached_vectors(texts: list[str], embedder: Embedder, cache_dir: Path, shipped: Path | None = None) -> np.ndarray:
    """Query-side vectors of the texts (the situations are matched against questions).

    Embedding the ~3,400 situation questions takes over a minute on 2 cores, so their vectors for the
    default embedder ship with the data (`shipped`, default `SHIPPED_VECTORS`, refreshed by
    `duty-assistant train`); any other text, or another embedder, is embedded once and kept in
    `cache_dir`.
    """
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    cache = Path(cache_dir) / f"situations-{hashlib.sha256(embedder.name.encode()).hexdigest()[:12]}.npz"
    known = {**_load_vectors(shipped or SHIPPED_VECTORS, embedder.name), **_load_vectors(cache, embedder.name)}
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    if missing:
        known.update(zip(missing, np.asarray(embedder.embed_queries(missing), dtype=np.float32)))
        _save_vectors(cache, embedder.name, {t: known[t] for t in dict.fromkeys(texts)})
    return np.stack([known[t] for t in texts]).astype(np.float32)


SHIPPED_VECTORS = SITUATIONS_FILE.with_suffix(".vectors.npz")


def ship_vectors(embedder: Embedder, path: Path = SHIPPED_VECTORS, texts: Iterable[str] | None = None) -> int:
    """Write the shipped vectors of `texts` (default: every situation question) for `embedder`,
    embedding only the texts the file does not hold yet; returns how many were embedded. A file
    that already holds exactly these texts is left untouched."""
    wanted = list(dict.fromkeys(texts if texts is not None else (q for e in load_entries() for q in e.questions)))
    known = _load_vectors(path, embedder.name)
    missing = [t for t in wanted if t not in known]
    if not missing and set(known) == set(wanted):
        return 0
    if missing:
        known.update(zip(missing, np.asarray(embedder.embed_queries(missing), dtype=np.float32)))
    _save_vectors(path, embedder.name, {t: known[t] for t in wanted})
    return len(missing)


def _load_vectors(path: Path, embedder: str) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path) as data:
        if str(data["embedder"]) != embedder:
            return {}
        return dict(zip(data["texts"].tolist(), data["vectors"].astype(np.float32)))


def _save_vectors(path: Path, embedder: str, vectors: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(
        partial,
        embedder=np.array(embedder),
        texts=np.array(list(vectors)),
        vectors=np.stack(list(vectors.values())).astype(np.float16),
    )
    os.replace(partial, path)
