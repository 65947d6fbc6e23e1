"""Retrieval: hybrid search for single-item questions, exact answers for everything else.

- 第N项 is a lookup by number, not a similarity search.
- Enumerations, counts and department views are computed from the item store with
  filters: the complete set, never a top-k cut.
- Comparisons align the same duty across townships by title, since numbers do not line up.
- Single-item questions gather candidates from five rankings — item vectors (Chroma), item
  keywords (BM25), the vectors and keywords of each duty's situation questions, and the duty
  classifier learned from those questions (`classifier.py`) — and a
  learned relevance model (`relevance.py`) orders them and gates the answer; a question no
  candidate passes is abstained on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from assistant.answering import pleasantries
from assistant.answering.classifier import DutyClassifier
from assistant.answering.classifier import load_model as load_classifier
from assistant.answering.glossary import expand
from assistant.answering.intent import Meaning
from assistant.answering.query import Catalog, Intent, Query, clean_question, masked, understand
from assistant.answering.relevance import FEATURES, load_model
from assistant.index import KnowledgeBase, keyword_text
from assistant.index.keywords import key_terms
from assistant.index.situations import SituationIndex
from assistant.items import DutyItem, ListKind
from assistant.settings import Settings
from assistant.titles import match, similarity


@dataclass
class Hit:
    item: DutyItem
    score: float = 0.0  # fused (reciprocal rank) score
    dense: float = 0.0  # cosine similarity of the item's vector
    keyword: float = 0.0  # BM25 of the item's text
    overlap: float = 0.0  # share of the question's key terms found in the item
    relevance: float = 0.0  # P(relevant) from the learned model (the fused score without one)
    relevant: bool = False
    situation: float = 0.0  # best cosine of the item's situation questions
    features: np.ndarray | None = field(default=None, repr=False)  # in relevance.FEATURES order


@dataclass
class Pair:
    """The same duty in two townships, as aligned by a comparison."""

    left: DutyItem
    right: DutyItem
    differences: tuple[str, ...] = ()


@dataclass
class Retrieval:
    query: Query
    cited: list[DutyItem] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    complete: bool = False  # `cited` is a computed complete set (enumeration, count, department, comparison)
    abstained: bool = False
    note: str = ""  # how a set was matched, or why nothing was found
    only: dict[str, list[DutyItem]] = field(default_factory=dict)  # comparison: town → items the other lacks
    pairs: list[Pair] = field(default_factory=list)  # comparison: aligned items
    refusal: str = ""  # the question was not searched; the reply instead (empty, too long, a greeting)
    compared: tuple[str, ...] = ()  # comparison: the townships compared
    scope: str = ""  # why an abstention is out of scope: "place" (no list for it), "figure" (lists hold none)
    alternatives: list[DutyItem] = field(default_factory=list)  # a second duty about as likely (also cited)
    seconds: float = 0.0

    @property
    def related(self) -> list[DutyItem]:
        """Nearest items that were not cited: shown as 'related', never cited."""
        cited = {item.id for item in self.cited}
        return [hit.item for hit in self.hits if hit.item.id not in cited][:3]


SIGNALS = ("dense", "keyword", "sit_dense", "sit_keyword", "duty")
EMPTY_QUESTION = "问题是空的，请输入要查询的问题。"


class Retriever:
    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None):
        self.kb = kb
        self.settings = settings or kb.settings
        self.items = kb.items
        self.catalog = Catalog.from_items(self.items)
        self.catalog.meaning = Meaning(self.kb.embedder.name, self.question_vector)
        self.texts = [keyword_text(item) for item in self.items]
        self.position = {item.id: i for i, item in enumerate(self.items)}
        self._aligned: dict[tuple[str, str], dict[int, int]] = {}
        self._last_vector: tuple[str | None, np.ndarray] = (None, np.zeros(0))  # none embedded yet
        self.department_keys = [
            frozenset(self.catalog.department_key(d) for d in item.involved_departments) for item in self.items
        ]
        # Per-item codes: filters are array operations, not a Python loop over 100k+ items.
        self._town_code = {t: k for k, t in enumerate(dict.fromkeys(i.town for i in self.items))}
        self._category_code = {c: k for k, c in enumerate(dict.fromkeys(i.category for i in self.items))}
        self._town_of = np.array([self._town_code[i.town] for i in self.items], dtype=np.int32)
        self._list_of = np.array([i.list.order for i in self.items], dtype=np.int8)
        self._category_of = np.array([self._category_code[i.category] for i in self.items], dtype=np.int32)
        self._number_of = np.array([i.number for i in self.items], dtype=np.int64)
        self._county_towns: dict[str, set[str]] = {}
        for item in self.items:
            self._county_towns.setdefault(item.county, set()).add(item.town)
        # Built here, not on the first question: embedding ~1,500 situation questions takes
        # ~15 s once per embedder (then read from the cache in a fraction of a second).
        self.situations = SituationIndex.build(self.items, self.kb.embedder, self.settings.vector_cache)
        self.use_classifier(load_classifier())

    def use_classifier(self, model: DutyClassifier | None) -> None:
        """Score items by the duty their situation entry names; not at all without a model, or
        with one fitted on another embedder's vectors."""
        if model is not None and model.embedder != self.kb.embedder.name:
            model = None
        self.classifier = model
        classes = {key: k for k, key in enumerate(model.keys)} if model else {}
        self._class_of = np.array([classes.get(key, -1) for key in self.situations.keys], dtype=np.int64)

    # -- entry point -------------------------------------------------------------------------

    def retrieve(
        self,
        question: str,
        *,
        towns: Sequence[str] = (),
        lists: Sequence[ListKind | str] = (),
        query: Query | None = None,
    ) -> Retrieval:
        """Answer-ready retrieval for a question; `towns` / `lists` narrow it (UI filters);
        `query`: the question already understood, so it is not understood twice."""
        started = time.perf_counter()
        question = clean_question(question)
        if not question:
            return Retrieval(Query(text=""), abstained=True, refusal=EMPTY_QUESTION)
        if pleasantry := pleasantries.reply(question, self.kb.towns):
            return Retrieval(Query(text=question), abstained=True, refusal=pleasantry)
        if len(question) > self.settings.max_question_chars:
            limit = self.settings.max_question_chars
            refusal = f"问题过长（{len(question)}字），请精简到{limit}字以内再问。"
            return Retrieval(Query(text=question[:limit]), abstained=True, refusal=refusal)
        query = query or self.understand(question)
        if query.unlisted_place and not towns:
            result = self.outside(query)
            result.seconds = time.perf_counter() - started
            return result
        if towns:
            query = replace(query, towns=tuple(t for t in towns if t in self.kb.towns) or query.towns)
        if lists:
            query = replace(query, lists=tuple(ListKind(k) for k in lists))
        handler = {
            Intent.LOOKUP: self.lookup,
            Intent.ENUMERATE: self.enumerate,
            Intent.COUNT: self.enumerate,
            Intent.COMPARE: self.compare,
        }.get(query.intent, self.single)
        if query.asks_figure or query.elsewhere:  # declined, compared or not: the responsible items are related
            handler = self.single
        result = handler(query)
        result.seconds = time.perf_counter() - started
        return result

    def understand(self, question: str) -> Query:
        return understand(question, self.catalog)

    # -- filters -----------------------------------------------------------------------------

    def _towns(self, query: Query) -> set[str]:
        towns = set(query.towns)
        for county in query.counties:
            towns |= self._county_towns.get(county, set())
        return towns

    def _mask(self, query: Query, *, structured: bool = False) -> np.ndarray:
        """Which items pass the question's filters (place and list always; category and
        department too when `structured`)."""
        towns = self._towns(query)
        mask = np.ones(len(self.items), dtype=bool)
        if towns:
            mask &= np.isin(self._town_of, [self._town_code[t] for t in towns if t in self._town_code])
        if query.lists:
            mask &= np.isin(self._list_of, [k.order for k in query.lists])
        if structured and query.categories:
            codes = [self._category_code[c] for c in query.categories if c in self._category_code]
            mask &= np.isin(self._category_of, codes)
        if structured and query.departments:
            wanted = set(query.departments)
            for i in np.flatnonzero(mask):
                mask[i] = bool(self.department_keys[i] & wanted)
        return mask

    def _items(self, mask: np.ndarray) -> list[DutyItem]:
        """The items a mask selects, in index order."""
        return [self.items[i] for i in np.flatnonzero(mask)]

    def _where(self, query: Query) -> dict | None:
        clauses = []
        towns = self._towns(query)
        if towns:
            clauses.append({"town": {"$in": sorted(towns)}})
        if query.lists:
            clauses.append({"list": {"$in": [k.value for k in query.lists]}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    # -- hybrid search -----------------------------------------------------------------------

    @cached_property
    def model(self):
        return load_model()

    def search(self, query: Query, n: int | None = None) -> list[Hit]:
        """The candidates ordered by the relevance model's probability (by fused rank without one)."""
        hits = self.candidates(query, n)
        model = self.model
        if hits and model is not None:
            rows = np.stack([h.features for h in hits if h.features is not None])
            for hit, probability in zip(hits, model.probability(rows)):
                hit.relevance = float(probability)
                hit.relevant = hit.relevance >= model.threshold
        hits.sort(key=lambda h: (-h.relevance, -h.score))
        return hits

    def embedded(self, query: Query) -> str:
        """The part of a question the dense model sees: its last `query_chars` characters (the ask
        comes last). The keyword, n-gram and situation-keyword signals still read all of it; the
        cap bounds a long story's cost."""
        return (query.search_text or query.text)[-self.settings.query_chars :]

    def question_vector(self, searched: str) -> np.ndarray:
        """The vector of a question's searched text (as `embedded` cuts it), embedded once: the
        learned heads read it while the question is understood, the search after."""
        text = searched[-self.settings.query_chars :]
        last_text, vector = self._last_vector  # one read: another thread may replace it
        if last_text != text:
            vector = self.kb.embedder.embed_query(text)
            self._last_vector = (text, vector)
        return vector

    def candidates(self, query: Query, n: int | None = None) -> list[Hit]:
        """Candidates from the five rankings over the filtered items, with their features."""
        n = n or self.settings.candidates
        mask = self._mask(query)
        if not mask.any():
            return []
        text = query.search_text or query.text
        expanded = expand(text)
        vector = self.question_vector(text)
        dense = dict(self.kb.dense(vector, self._where(query), n))
        sit_dense, sit_keyword = self.situations.best(vector, expanded)
        duty = np.zeros(len(self.items))
        if self.classifier is not None:
            probability = self.classifier.probabilities(vector, masked(text, self.catalog))
            duty = np.where(self._class_of >= 0, probability[self._class_of], 0.0)
        scores = {
            "keyword": np.where(mask, self.kb.keywords.scores(expanded), -1.0),
            "sit_dense": np.where(mask, sit_dense, -1.0),
            "sit_keyword": np.where(mask, sit_keyword, -1.0),
            "duty": np.where(mask, duty, -1.0),
        }
        rankings = {"dense": [self.position[id_] for id_ in dense]}
        for signal, values in scores.items():
            rankings[signal] = [int(i) for i in np.argsort(-values, kind="stable")[:n] if values[i] > 0]
        weights = {
            "dense": self.settings.dense_share,
            "keyword": 1.0,
            "sit_dense": self.settings.situation_share,
            "sit_keyword": self.settings.situation_keyword_share,
            "duty": self.settings.situation_share,
        }
        fused: dict[int, float] = {}
        ranks: dict[str, dict[int, int]] = {}
        k = self.settings.rrf_k
        for signal, ranking in rankings.items():
            ranks[signal] = {i: rank for rank, i in enumerate(ranking)}
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + weights[signal] / (k + rank + 1)
        candidates = list(fused)
        dense.update(
            self.kb.similarity(vector, [self.items[i].id for i in candidates if self.items[i].id not in dense])
        )
        dense_of = np.array([dense.get(self.items[i].id, 0.0) for i in candidates])
        columns = {
            "dense": dense_of,
            "keyword": np.log1p(np.maximum(scores["keyword"][candidates], 0.0)),
            "sit_dense": np.maximum(scores["sit_dense"][candidates], 0.0),
            "sit_keyword": np.log1p(np.maximum(scores["sit_keyword"][candidates], 0.0)),
            "duty": np.maximum(scores["duty"][candidates], 0.0),
        }
        for signal in SIGNALS:
            columns["rank_" + signal] = np.array(
                [1.0 / (1 + ranks[signal][i]) if i in ranks[signal] else 0.0 for i in candidates]
            )
            columns["gap_" + signal] = columns[signal] - columns[signal].max()
        terms = key_terms(text)
        columns["overlap"] = np.array([_share(terms, self.texts[i]) for i in candidates])
        columns["title_overlap"] = np.array([_share(terms, self.items[i].title) for i in candidates])
        wanted = set(query.departments)
        columns["department"] = np.array([float(bool(self.department_keys[i] & wanted)) for i in candidates])
        columns["situations"] = self.situations.has[candidates].astype(np.float64)
        columns["dense_alone"] = columns["dense"] * (1 - columns["situations"])
        columns["keyword_alone"] = columns["keyword"] * (1 - columns["situations"])
        rows = np.column_stack([columns[name] for name in FEATURES])
        return [
            Hit(
                self.items[i],
                fused[i],
                float(dense_of[row]),
                float(max(scores["keyword"][i], 0.0)),
                float(columns["overlap"][row]),
                relevance=fused[i],
                relevant=True,
                situation=float(columns["sit_dense"][row]),
                features=rows[row],
            )
            for row, i in enumerate(candidates)
        ]

    def outside(self, query: Query) -> Retrieval:
        """A place with no list: nothing is cited; the loaded townships' nearest items are only related."""
        result = Retrieval(query, hits=[h for h in self.search(query) if h.relevant], abstained=True, scope="place")
        result.note = f"现有清单只包括{'、'.join(self.kb.towns)}，没有{'、'.join(query.unknown_places)}的履职事项清单"
        return result

    def single(self, query: Query) -> Retrieval:
        hits = self.search(query)
        result = Retrieval(query, hits=hits)
        relevant = [h for h in hits if h.relevant]
        if not relevant:
            result.abstained = True
            result.note = "清单中没有找到与问题足够相关的事项"
            return result
        if query.elsewhere:  # nearest items are shown as related; none answers a service handled elsewhere
            result.hits = relevant
            result.abstained = True
            result.scope = "service"
            result.note = "这项业务不属于乡镇履职事项清单的范围"
            return result
        if query.asks_figure:  # the responsible item is shown as related, never as the source of a figure
            result.hits = relevant
            result.abstained = True
            result.scope = "figure"
            result.note = "履职事项清单只规定由谁负责、做什么，不含具体的金额、标准、期限或联系方式"
            return result
        cutoff = self.settings.relative_cutoff * relevant[0].relevance
        best: dict[str, float] = {}  # township → relevance of its best item
        for hit in relevant:
            if hit.relevance < cutoff or len(result.cited) + len(result.alternatives) >= self.settings.top_k:
                break
            town = hit.item.town
            if town not in best:  # the best match of each township
                best[town] = hit.relevance
                result.cited.append(hit.item)
            elif (
                self.settings.ambiguity_gap > 0
                and not any(i.town == town for i in result.alternatives)
                and _log_odds(best[town]) - _log_odds(hit.relevance) <= self.settings.ambiguity_gap
            ):
                result.alternatives.append(hit.item)
        result.cited += result.alternatives
        return result

    # -- exact answers -----------------------------------------------------------------------

    def lookup(self, query: Query) -> Retrieval:
        mask = self._mask(query)
        cited = self._items(mask & (self._number_of == query.number))
        result = Retrieval(query, cited=cited, complete=True)
        if not cited:
            result.abstained = True
            result.note = f"所选清单中没有第{query.number}项"
        elif not query.lists and len({i.list for i in cited}) > 1:
            result.note = f"未指明清单，列出各清单的第{query.number}项"
        return result

    def enumerate(self, query: Query) -> Retrieval:
        """The complete set an enumeration, count or department question asks for."""
        mask = self._mask(query, structured=True)
        terms = self._listed_terms(query.topic)
        topical = bool(terms)
        notes = []
        if query.departments:
            notes.append("按“对应上级部门”和“承接部门”匹配部门，不含职责正文中的提及")
        if topical:
            hits = self._topic_hits(terms, mask)
            cited = sorted((h.item for h in hits), key=lambda item: self.position[item.id])
            notes.append(f"按关键词“{query.topic}”匹配事项名称和职责内容")
            result = Retrieval(query, cited=cited, hits=hits, complete=True)
        else:
            result = Retrieval(query, cited=self._items(mask), complete=True)
        result.note = "；".join(notes)
        if not result.cited:
            result.abstained = True
            result.note = result.note or "没有符合条件的事项"
        return result

    def _listed_terms(self, topic: str, *, situations: bool = False) -> list[str]:
        """The topic's terms that the lists use at all. What is left of a set question after its
        filters ("跟水利局沾边的事儿都有啥", "县里要统计…帮忙列个单子") is mostly the asker's own
        wording; a term no item contains cannot name a subject of the lists, and as a filter
        it emptied the set. `situations`: the situation questions' words count too (a comparison
        searches them: "娃不去上学" names a subject no item words that way)."""
        vocabularies = [self.kb.keywords.bm25.vocab_dict]
        if situations and self.situations.keywords is not None:
            vocabularies.append(self.situations.keywords.bm25.vocab_dict)
        return [term for term in key_terms(topic) if any(term in v for v in vocabularies)]

    def _topic_hits(self, terms: list[str], within: np.ndarray) -> list[Hit]:
        """Recall-oriented keyword match: items within the mask containing enough of the topic's terms."""
        hits = []
        for i in np.flatnonzero(within):
            overlap = _share(terms, self.texts[i])
            if overlap >= self.settings.min_overlap:
                hits.append(Hit(self.items[i], overlap, overlap=overlap, relevance=overlap, relevant=True))
        hits.sort(key=lambda h: -h.score)
        return hits

    def _about(self, query: Query, within: np.ndarray, towns: tuple[str, str]) -> np.ndarray:
        """Items of a comparison's topic: the candidates the relevance model finds relevant to the
        topic and close to the best in either township, then the aligned counterpart of each in the
        other township (the same duty is worded differently in each list). A cut-off per township
        took a loosely related item where one township lacks the duty (train+dev comparisons exact
        416 -> 423 of 561)."""
        topic = replace(query, intent=Intent.SINGLE, text=query.topic, search_text=query.topic, towns=towns)
        floor = self.settings.topic_relevance
        hits = [h for h in self.search(topic) if h.relevance >= floor and within[self.position[h.item.id]]]
        chosen = np.zeros(len(self.items), dtype=bool)
        if hits:
            best = max(h.relevance for h in hits)
            for hit in hits:
                if hit.relevance >= self.settings.topic_cutoff * best:
                    chosen[self.position[hit.item.id]] = True
        counterparts = self._counterparts(towns)
        for i in np.flatnonzero(chosen):
            j = counterparts.get(int(i))
            if j is not None and within[j]:
                chosen[j] = True
        return chosen

    def _counterparts(self, towns: tuple[str, str]) -> dict[int, int]:
        """Positions of the same duty in the other township, both ways. The whole lists are
        aligned by title, so a duty one township lacks gets no counterpart (aligning the picked
        items alone paired 湿地保护工作 with 农村饮用水源地保护工作, Dice 0.53)."""
        key = (min(towns), max(towns))
        if key not in self._aligned:
            left, right = (self._items(self._town_of == self._town_code.get(t, -1)) for t in key)
            found: dict[int, int] = {}
            for a, b, _ in match(
                left, right, _title, _title, allowed=lambda a, b: a.list is b.list, tie_break=lambda a, b: (a.id, b.id)
            ):
                found[self.position[a.id]] = self.position[b.id]
                found[self.position[b.id]] = self.position[a.id]
            self._aligned[key] = found
        return self._aligned[key]

    def compare(self, query: Query) -> Retrieval:
        towns = list(query.towns) or [t for t in self.kb.towns if t in self._towns(query)] or self.kb.towns
        result = Retrieval(query, complete=True)
        if len(towns) < 2:
            result.abstained = True
            result.note = "比较需要两个乡镇，目前只加载了一个" if len(self.kb.towns) < 2 else "请指明要比较的两个乡镇"
            return result
        left, right = towns[:2]
        result.compared = (left, right)
        lacking = _lacking_town(query.text, (left, right))
        mask = self._mask(replace(query, towns=(left, right)), structured=True)
        topical = bool(self._listed_terms(query.topic, situations=True))
        if topical:
            mask &= self._about(query, mask, (left, right))
        pairs, only = align(
            self._items(mask & (self._town_of == self._town_code.get(left, -1))),
            self._items(mask & (self._town_of == self._town_code.get(right, -1))),
            self.catalog,
            towns=(left, right),
        )
        if topical and query.compare_mode in ("diff", "both"):
            query = replace(query, compare_mode="all")  # how one subject differs: shown pair by pair
            result.query = query
        if query.compare_mode == "only":
            sides = [t for t in (left, right) if t != lacking] if lacking else [left, right]
            result.only = {t: only[t] for t in sides}
            result.cited = [item for t in sides for item in only[t]]
        elif query.compare_mode in ("both", "all"):
            result.pairs = pairs
            result.only = {t: items for t, items in only.items() if items} if query.compare_mode == "all" else {}
            result.cited = [item for items in result.only.values() for item in items]
            result.cited += [item for pair in pairs for item in (pair.left, pair.right)]
        else:
            result.only = only
            result.pairs = [p for p in pairs if p.differences]
            result.cited = [item for t in (left, right) for item in only[t]]
            result.cited += [item for pair in result.pairs for item in (pair.left, pair.right)]
        result.note = "按事项名称对齐两镇的同一事项（序号不对应）"
        return result


def _log_odds(probability: float) -> float:
    probability = min(max(probability, 1e-9), 1 - 1e-9)
    return float(np.log(probability / (1 - probability)))


def _lacking_town(text: str, towns: tuple[str, str]) -> str | None:
    """In '半截沟镇有哪些事项是二工镇没有的', 二工镇 is the one lacking."""
    for town in towns:
        short = town.rstrip("镇乡")
        if re.search(f"(?:{town}|{short}).{{0,3}}(?:没有|没|缺少|不具备)", text):
            return town
    return None


def align(
    left: list[DutyItem], right: list[DutyItem], catalog: Catalog, towns: tuple[str, str] | None = None
) -> tuple[list[Pair], dict[str, list[DutyItem]]]:
    """Match the same duty across two townships' items of the same list, one-to-one, best first."""
    matched = match(
        left, right, _title, _title, allowed=lambda a, b: a.list is b.list, tie_break=lambda a, b: (a.id, b.id)
    )
    pairs = [Pair(a, b, _differences(a, b, score, catalog)) for a, b, score in matched]
    pairs.sort(key=lambda p: (p.left.list.order, p.left.number))
    used = {a.id for a, _, _ in matched} | {b.id for _, b, _ in matched}
    left_town, right_town = towns or (left[0].town if left else "", right[0].town if right else "")
    only = {left_town: [a for a in left if a.id not in used], right_town: [b for b in right if b.id not in used]}
    return pairs, only


def _title(item: DutyItem) -> str:
    return item.title


def _share(terms: list[str], text: str) -> float:
    """Share of the terms that occur in the text (0 when there are no terms)."""
    return sum(t in text for t in terms) / len(terms) if terms else 0.0


def _differences(a: DutyItem, b: DutyItem, score: float, catalog: Catalog) -> tuple[str, ...]:
    found = []
    keys_a = {catalog.department_key(d) for d in a.involved_departments}
    keys_b = {catalog.department_key(d) for d in b.involved_departments}
    if keys_a != keys_b:
        role = "牵头部门" if a.list is ListKind.COORDINATED else "承接部门"
        found.append(
            f"{role}不同：{a.town}为{'、'.join(a.involved_departments)}，{b.town}为{'、'.join(b.involved_departments)}"
        )
    if score < 0.9:
        found.append("事项名称表述不同")
    if (
        a.township_duties
        and b.township_duties
        and similarity("".join(a.township_duties), "".join(b.township_duties)) < 0.6
    ):
        found.append("乡镇配合职责不同")
    return tuple(found)
