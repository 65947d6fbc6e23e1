"""Retrieval: hybrid search for single-item questions, exact answers for everything else.

- 第N项 is a lookup by number, not a similarity search.
- Enumerations, counts and department views are computed from the item store with
  filters: the complete set, never a top-k cut.
- Comparisons align the same duty across townships by title, since numbers do not line up.
- Single-item questions fuse dense (Chroma) and keyword (BM25) rankings and keep only items
  that pass the relevance gate; a question nothing passes is abstained on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from assistant.glossary import expand
from assistant.index import KnowledgeBase, keyword_text
from assistant.items import DutyItem, ListKind
from assistant.keywords import key_terms
from assistant.query import Catalog, Intent, Query, clean_question, understand
from assistant.settings import Settings


@dataclass
class Hit:
    item: DutyItem
    score: float = 0.0  # fused (reciprocal rank) score
    dense: float = 0.0  # cosine similarity, 0 when not among the dense candidates
    keyword: float = 0.0  # BM25
    overlap: float = 0.0  # share of the question's key terms found in the item
    relevance: float = 0.0  # the calibrated gate's score
    relevant: bool = False


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
    refusal: str = ""  # the question was not searched, and why (e.g. too long)
    compared: tuple[str, ...] = ()  # comparison: the townships compared
    seconds: float = 0.0

    @property
    def related(self) -> list[DutyItem]:
        """Nearest items that were not cited: shown as 'related', never cited."""
        cited = {item.id for item in self.cited}
        return [hit.item for hit in self.hits if hit.item.id not in cited][:3]


_LIST_INDEX = {kind: k for k, kind in enumerate(ListKind)}
EMPTY_QUESTION = "问题是空的，请输入要查询的问题。"


class Retriever:
    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None):
        self.kb = kb
        self.settings = settings or kb.settings
        self.items = kb.items
        self.catalog = Catalog.from_items(self.items)
        self.texts = [keyword_text(item) for item in self.items]
        self.position = {item.id: i for i, item in enumerate(self.items)}
        self.department_keys = [
            frozenset(self.catalog.department_key(d) for d in item.involved_departments) for item in self.items
        ]
        # Per-item codes: filters are array operations, not a Python loop over 100k+ items.
        self._town_code = {t: k for k, t in enumerate(dict.fromkeys(i.town for i in self.items))}
        self._category_code = {c: k for k, c in enumerate(dict.fromkeys(i.category for i in self.items))}
        self._town_of = np.array([self._town_code[i.town] for i in self.items], dtype=np.int32)
        self._list_of = np.array([_LIST_INDEX[i.list] for i in self.items], dtype=np.int8)
        self._category_of = np.array([self._category_code[i.category] for i in self.items], dtype=np.int32)
        self._number_of = np.array([i.number for i in self.items], dtype=np.int64)
        self._county_towns: dict[str, set[str]] = {}
        for item in self.items:
            self._county_towns.setdefault(item.county, set()).add(item.town)

    # -- entry point -------------------------------------------------------------------------

    def retrieve(
        self, question: str, *, towns: Sequence[str] = (), lists: Sequence[ListKind | str] = ()
    ) -> Retrieval:
        """Answer-ready retrieval for a question; `towns` / `lists` narrow it (UI filters)."""
        started = time.perf_counter()
        question = clean_question(question)
        if not question:
            return Retrieval(Query(text=""), abstained=True, refusal=EMPTY_QUESTION)
        if len(question) > self.settings.max_question_chars:
            limit = self.settings.max_question_chars
            refusal = f"问题过长（{len(question)}字），请精简到{limit}字以内再问。"
            return Retrieval(Query(text=question[:limit]), abstained=True, refusal=refusal)
        query = understand(question, self.catalog)
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
        result = handler(query)
        result.seconds = time.perf_counter() - started
        return result

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
            mask &= np.isin(self._list_of, [_LIST_INDEX[k] for k in query.lists])
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

    def search(self, query: Query, n: int | None = None) -> list[Hit]:
        """Dense and keyword rankings over the filtered items, fused by reciprocal rank."""
        n = n or self.settings.candidates
        mask = self._mask(query)
        if not mask.any():
            return []
        text = query.search_text or query.text
        expanded = expand(text)
        vector = self.kb.embedder.embed_query(text)
        dense = dict(self.kb.dense(vector, self._where(query), n))
        keyword = np.where(mask, self.kb.keywords.scores(expanded), -1.0)
        keyword_rank = [i for i in np.argsort(-keyword, kind="stable")[:n] if keyword[i] > 0]
        fused: dict[int, float] = {}
        k = self.settings.rrf_k
        for rank, id_ in enumerate(dense):
            fused[self.position[id_]] = fused.get(self.position[id_], 0.0) + self.settings.dense_share / (k + rank + 1)
        for rank, i in enumerate(keyword_rank):
            fused[i] = fused.get(i, 0.0) + 1.0 / (k + rank + 1)
        # keyword-only candidates get their real cosine, so the relevance gate weighs both signals
        dense.update(self.kb.similarity(vector, [self.items[i].id for i in fused if self.items[i].id not in dense]))
        terms = key_terms(text)
        hits = []
        for i, score in fused.items():
            item = self.items[i]
            overlap = sum(t in self.texts[i] for t in terms) / len(terms) if terms else 0.0
            hits.append(Hit(item, score, dense.get(item.id, 0.0), float(max(keyword[i], 0.0)), overlap))
        hits.sort(key=lambda h: -h.score)
        s = self.settings
        for hit in hits:
            hit.relevance = s.dense_weight * (hit.dense - s.dense_center) + float(np.log1p(hit.keyword))
            hit.relevant = hit.relevance >= s.min_relevance
        return hits

    def single(self, query: Query) -> Retrieval:
        hits = self.search(query)
        result = Retrieval(query, hits=hits)
        relevant = [h for h in hits if h.relevant]
        if not relevant:
            result.abstained = True
            result.note = "清单中没有找到与问题足够相关的事项"
            return result
        best = relevant[0].score
        cutoff = self.settings.relative_cutoff * best
        per_town: dict[str, int] = {}
        for hit in relevant:
            if hit.score < cutoff or len(result.cited) >= self.settings.top_k:
                break
            if per_town.get(hit.item.town, 0) >= 1:
                continue  # one item per township: the best match of each
            per_town[hit.item.town] = 1
            result.cited.append(hit.item)
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
        topical = _has_topic(query.topic)
        notes = []
        if query.departments:
            notes.append("按“对应上级部门”和“承接部门”匹配部门，不含职责正文中的提及")
        if topical:
            hits = [h for h in self._topic_hits(query, mask)]
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

    def _topic_mask(self, topic: str, within: np.ndarray) -> np.ndarray:
        """Items within `within` that contain enough of the topic's terms."""
        terms = key_terms(topic)
        mask = np.zeros(len(self.items), dtype=bool)
        for i in np.flatnonzero(within):
            mask[i] = sum(t in self.texts[i] for t in terms) / len(terms) >= self.settings.min_overlap
        return mask

    def _topic_hits(self, query: Query, mask: np.ndarray) -> list[Hit]:
        """Recall-oriented keyword match: items containing the topic's terms, ranked."""
        terms = key_terms(query.topic)
        if not terms:
            return []
        hits = []
        for i in np.flatnonzero(mask):
            text = self.texts[i]
            overlap = sum(t in text for t in terms) / len(terms)
            if overlap >= self.settings.min_overlap:
                hits.append(Hit(self.items[i], overlap, overlap=overlap, relevant=True))
        hits.sort(key=lambda h: -h.score)
        return hits

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
        topical = _has_topic(query.topic)
        if topical:
            mask &= self._topic_mask(query.topic, mask)
        pairs, only = align(
            self._items(mask & (self._town_of == self._town_code.get(left, -1))),
            self._items(mask & (self._town_of == self._town_code.get(right, -1))),
            self.catalog,
        )
        if topical and query.compare_mode == "diff":
            query = replace(query, compare_mode="topic")
            result.query = query
        if query.compare_mode == "only":
            sides = [t for t in (left, right) if t != lacking] if lacking else [left, right]
            result.only = {t: only[t] for t in sides}
            result.cited = [item for t in sides for item in only[t]]
        elif query.compare_mode in ("both", "topic"):  # "topic": how one duty differs, shown pair by pair
            result.pairs = pairs
            result.only = {t: items for t, items in only.items() if items} if query.compare_mode == "topic" else {}
            result.cited = [item for items in result.only.values() for item in items]
            result.cited += [item for pair in pairs for item in (pair.left, pair.right)]
        else:
            result.only = only
            result.pairs = [p for p in pairs if p.differences]
            result.cited = [item for t in (left, right) for item in only[t]]
            result.cited += [item for pair in result.pairs for item in (pair.left, pair.right)]
        result.note = "按事项名称对齐两镇的同一事项（序号不对应）"
        return result


def _has_topic(topic: str) -> bool:
    return bool(key_terms(topic))


def _lacking_town(text: str, towns: tuple[str, str]) -> str | None:
    """In '半截沟镇有哪些事项是二工镇没有的', 二工镇 is the one lacking."""
    for town in towns:
        short = town.rstrip("镇乡")
        if re.search(f"(?:{town}|{short}).{{0,3}}(?:没有|没|缺少|不具备)", text):
            return town
    return None


def bigram_similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams: robust to the small wording differences between lists."""
    grams_a = {a[i : i + 2] for i in range(len(a) - 1)}
    grams_b = {b[i : i + 2] for i in range(len(b) - 1)}
    if not grams_a or not grams_b:
        return float(a == b)
    return 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))


ALIGN_THRESHOLD = 0.5


def align(
    left: list[DutyItem], right: list[DutyItem], catalog: Catalog
) -> tuple[list[Pair], dict[str, list[DutyItem]]]:
    """Match the same duty across two townships' items of the same list, one-to-one, best first."""
    candidates = []
    for a in left:
        for b in right:
            if a.list is b.list:
                similarity = bigram_similarity(a.title, b.title)
                if similarity >= ALIGN_THRESHOLD:
                    candidates.append((similarity, a.id, b.id, a, b))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_left, used_right, pairs = set(), set(), []
    for similarity, _, _, a, b in candidates:
        if a.id in used_left or b.id in used_right:
            continue
        used_left.add(a.id)
        used_right.add(b.id)
        pairs.append(Pair(a, b, _differences(a, b, similarity, catalog)))
    pairs.sort(key=lambda p: (list(ListKind).index(p.left.list), p.left.number))
    only = {}
    if left:
        only[left[0].town] = [a for a in left if a.id not in used_left]
    if right:
        only[right[0].town] = [b for b in right if b.id not in used_right]
    return pairs, only


def _differences(a: DutyItem, b: DutyItem, similarity: float, catalog: Catalog) -> tuple[str, ...]:
    found = []
    keys_a = {catalog.department_key(d) for d in a.involved_departments}
    keys_b = {catalog.department_key(d) for d in b.involved_departments}
    if keys_a != keys_b:
        role = "牵头部门" if a.list is ListKind.COORDINATED else "承接部门"
        found.append(
            f"{role}不同：{a.town}为{'、'.join(a.involved_departments)}，{b.town}为{'、'.join(b.involved_departments)}"
        )
    if similarity < 0.9:
        found.append("事项名称表述不同")
    if a.township_duties and b.township_duties:
        if bigram_similarity("".join(a.township_duties), "".join(b.township_duties)) < 0.6:
            found.append("乡镇配合职责不同")
    return tuple(found)
