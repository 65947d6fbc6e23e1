"""Query understanding: what a question asks for and which filters it names.

The vocabulary (townships, counties, categories, departments) comes from the loaded items,
so a new township's names work without code changes. Intents are recognised from a small
table of cue words; an ambiguous question stays a single-item question answered by hybrid
retrieval rather than a guess at a set.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from assistant.answering import intent as intent_model
from assistant.answering.departments import department_key, surface_forms
from assistant.answering.pinyin import PinyinLexicon
from assistant.answering.places import asked_places, segment
from assistant.index.keywords import key_terms
from assistant.index.records import keyword_text
from assistant.items import DutyItem, ListKind


class Intent(str, Enum):
    SINGLE = "single"  # which item is about X
    LOOKUP = "lookup"  # 第N项
    ENUMERATE = "enumerate"  # 列出 / 哪些 / 所有
    COUNT = "count"  # 多少 / 几项
    COMPARE = "compare"  # 两个镇有什么不同


@dataclass(frozen=True)
class Query:
    text: str
    intent: Intent = Intent.SINGLE
    towns: tuple[str, ...] = ()
    counties: tuple[str, ...] = ()
    lists: tuple[ListKind, ...] = ()
    categories: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()  # department keys
    number: int | None = None
    topic: str = ""  # the question with every filter word removed: what an item must be about
    search_text: str = ""  # the question without place names, for similarity search
    compare_mode: str = ""  # for COMPARE: "only" (one side lacks) / "both" / "diff" / "all"
    asks_figure: bool = False  # an amount, standard, date or contact: the lists hold none
    elsewhere: bool = False  # a service no township list covers (passports, exams, broadband…)
    cues: dict[str, float] = field(default_factory=dict, compare=False)  # the intent model's inputs
    unknown_places: tuple[str, ...] = ()  # places named that have no list in the index
    unlisted_place: bool = False  # what the question asks about is one of those places


# Plain substrings, longest first; a pattern (re) where a bare word is ambiguous (基本农田).
# A list's name filters every question; a verb only a question about sets, counts or numbers:
# "承包地被村里收回了", "镇上收不收", "要配合邻居" are situations, not the withdrawn or coordinated list.
LIST_NAMES: tuple[tuple[str, ListKind], ...] = (
    ("上级部门收回", ListKind.WITHDRAWN),
    ("收回事项", ListKind.WITHDRAWN),
    ("收回清单", ListKind.WITHDRAWN),
    ("配合履职", ListKind.COORDINATED),
    ("配合事项", ListKind.COORDINATED),
    ("配合清单", ListKind.COORDINATED),
    ("基本履职", ListKind.BASIC),
    ("基本事项", ListKind.BASIC),
    ("基本清单", ListKind.BASIC),
    ("基本职责", ListKind.BASIC),
    (r"基本(?=\s*第)", ListKind.BASIC),  # 二工镇基本第88项
)
LIST_VERBS: tuple[tuple[str, ListKind], ...] = (
    ("收回的", ListKind.WITHDRAWN),
    ("收回了", ListKind.WITHDRAWN),
    ("被收回", ListKind.WITHDRAWN),
    ("收回到", ListKind.WITHDRAWN),
    ("收回", ListKind.WITHDRAWN),
    ("上收", ListKind.WITHDRAWN),
    ("配合", ListKind.COORDINATED),
    ("协助", ListKind.COORDINATED),
)
LIST_WORDS = LIST_NAMES + LIST_VERBS
# "镇里自己干还是配合县里", "哪些自己办、哪些配合县人大": the township's own part set against the
# part it assists asks across the lists; there a list verb or a department filters nothing.
ACROSS_LISTS = re.compile(r"自己|自主|还是(?:要)?(?:配合|协助)|(?:配合|协助)[^，。？?；;]{0,12}还是")

# (intent, cue pattern): the first matching row wins, after 第N项 (LOOKUP) and comparison.
# Cues are specific on purpose: "电话是多少" is no count, "镇上要管哪些" no enumeration.
INTENT_CUES: tuple[tuple[Intent, re.Pattern], ...] = (
    (Intent.COUNT, re.compile(r"(?<!哪)(?:多少|几)\s*(?:项|条|个|件|类)|多少(?:事项|事)|数量|总数|总共有|一共有")),
    (
        Intent.ENUMERATE,
        re.compile(
            r"列出|列举|罗列|所有|全部|一览|汇总|哪些.{0,8}?(?:事项|事|工作|职责|项)|有哪些|哪几项|哪几个|哪几条"
            r"|都有什么|都有啥|都有哪|包括哪些|包括什么|清单里有什么"
        ),
    ),
)
# What one township has and the other lacks (越来越多了 is no 多了); any difference asked for;
# with 都有/共同, a comparison at all.
_ONE_SIDED = r"独有|特有|多出|(?<!越)少了|(?<!越)多了"
# 没有 says one side lacks something ("二工有而半截沟没有的"), except as the yes/no form of a
# question ("有没有区别", "有啥区别没有？") or with a word of sameness ("没有不同").
ONLY_CUES = re.compile(r"(?<!有)没有(?![什啥]?(?:区别|差别|差异|不同|不一样|两样)|\s*(?:[？?。!！]|$))|" + _ONE_SIDED)
CONTRAST_CUES = re.compile(r"不同|区别|差异|差别|一样|相同|比较|对比|对照|没有的|" + _ONE_SIDED)
COMPARE_CUES = re.compile(CONTRAST_CUES.pattern + r"|都有|共同")
# Words that frame a set question without narrowing it: removed before looking for a topic.
FRAME_WORDS = re.compile(
    r"涉及|有关|相关|关于|方面|承接|负责|交给|交由|划给|归口|对接|需要|需|要|配合|协助|自己|自主|收回|牵头|部门|单位|"
    r"列出|列举|罗列|所有|全部|一览|汇总|哪些|哪几|有什么|都有|包括|多少|几项|几条|几个|几件|数量|总数|总共|一共|共有|"
    r"两个|两|各自|各|分别|其中|区别|不同|差异|差别|一样|相同|共同|独有|特有|没有|比较|对比|相比|比起|之间|多出|少了|而且|什么|哪个|哪|"
    r"事项|清单|履职|职责|工作|项目|的|了|有|是|里|中|给|被|在|和|与|及|还|都|共|项|条|个|件|类|我们|咱们|镇|乡|县"
)
BOTH_TOWNS = re.compile(r"两个?镇|两乡|两个乡|两地|各镇|两个乡镇|两镇|俩镇|俩乡")

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_SECTIONS = {"万": 10**4, "亿": 10**8}
# A reference to a numbered item: 第N项/条/号, 序号N, 编号N, N号事项 — not an ordinal inside a phrase
# (第一次, 第一书记, 第二天), nor an article of a law (《物业管理条例》第六十三条, 办法第5条).
_NUMERAL = r"([0-9０-９]+|[零〇一二两三四五六七八九十百千万亿]+)"
_NUMBER = re.compile(
    rf"(?<![法例定》则])第\s*{_NUMERAL}\s*(?:项|条|号)"
    rf"|(?:序号|编号)\s*(?:为|是)?\s*{_NUMERAL}"
    r"|([0-9]+)\s*号事项"
)
# 第N个 is an ordinal of anything (第一个来的人) unless a list is named: 配合事项第27个.
_NTH_OF_LIST = re.compile(rf"第\s*{_NUMERAL}\s*个")


def chinese_number(text: str) -> int | None:
    """'22', '二十二', '一百零九', '一万', '一千亿' → int; None for anything else.

    Every place value is honoured: a number the lists do not have must be looked up (and
    reported missing), never read as a smaller one (第一万项 is not 第1项).
    """
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if text.isdecimal() and text.isascii():
        return int(text)
    total, section, current = 0, 0, 0
    for char in text:
        if char in _CN_DIGITS:
            current = _CN_DIGITS[char]
        elif char in _CN_UNITS:
            section += (current or 1) * _CN_UNITS[char]
            current = 0
        elif char in _CN_SECTIONS:
            section += current
            if not section and not total:
                return None  # '万' alone is no number
            if char == "亿":
                total, section = (total + section) * _CN_SECTIONS[char], 0
            else:
                total, section = total + section * _CN_SECTIONS[char], 0
            current = 0
        else:
            return None
    return total + section + current


# Invisible characters that change no meaning but break matching: zero-width spaces and
# joiners, BOM, word joiner, bidi marks (Unicode category Cf), and control characters.
def clean_question(text: str) -> str:
    """The question as the user sees it: format characters removed, controls as spaces."""
    kept = (" " if unicodedata.category(c) == "Cc" else c for c in text if unicodedata.category(c) != "Cf")
    return "".join(kept).strip()


@dataclass
class Catalog:
    """The names a question can use, built from the loaded items."""

    towns: dict[str, str] = field(default_factory=dict)  # surface → town
    counties: dict[str, str] = field(default_factory=dict)  # surface → county
    categories: dict[str, str] = field(default_factory=dict)  # surface → category
    departments: dict[str, str] = field(default_factory=dict)  # surface → key
    places: tuple[str, ...] = ()
    mentioned: str = ""  # the items' titles: place names the lists themselves mention are not unknown
    pinyin: PinyinLexicon | None = None  # pinyin typed for the items' words (dibao → 低保)
    meaning: intent_model.Meaning | None = None  # the retriever's question vectors, read by the learned heads

    @classmethod
    def from_items(cls, items: Iterable[DutyItem]) -> Catalog:
        items = list(items)
        places = tuple(sorted({p for i in items for p in (i.county, i.prefecture) if p} | _short_prefectures(items)))
        catalog = cls(
            places=places,
            mentioned="\n".join(dict.fromkeys(i.title for i in items)),
        )
        for item in items:
            for surface in _short_forms(item.town, ("镇", "乡", "街道", "苏木")):
                catalog.towns.setdefault(surface, item.town)
            for surface in _short_forms(item.county, ("县", "市", "区", "旗")):
                catalog.counties.setdefault(surface, item.county)
            catalog.categories.setdefault(item.category, item.category)
            catalog.categories.setdefault(item.category + "类", item.category)
        catalog.pinyin = PinyinLexicon((keyword_text(i) for i in items), names=[*catalog.towns, *catalog.counties])
        for category in list(catalog.categories):
            for part in re.split(r"及|和|与", category):
                if len(part) >= 2 and part != category:
                    catalog.categories.setdefault(part + "类", category)
        keys = {department_key(d, places) for i in items for d in i.involved_departments}
        catalog.departments = surface_forms(keys)
        return catalog

    def department_key(self, name: str) -> str:
        return department_key(name, self.places)

    def known_places(self) -> tuple[str, ...]:
        """Every way the loaded townships, counties and prefectures are written."""
        return (*self.towns, *self.counties, *self.places)


def _short_forms(name: str, suffixes: tuple[str, ...]) -> list[str]:
    forms = [name]
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            forms.append(name[: -len(suffix)])
    return forms


def _short_prefectures(items: list[DutyItem]) -> set[str]:
    """昌吉回族自治州 is also written 昌吉州."""
    return {re.sub(r"^(.{2}).*自治州$", r"\1州", i.prefecture) for i in items if i.prefecture.endswith("自治州")}


def _find(text: str, vocabulary: dict[str, str], words: str = "") -> tuple[list[str], str]:
    """Longest-first matches of vocabulary surfaces; returns values in order and the text with them
    blanked. A two-character surface inside a longer word of `words` (the lists' own text) is part
    of that word: 林草 in 森林草原, 工信 in 务工信息."""
    found: list[tuple[int, str]] = []
    for surface in sorted(vocabulary, key=len, reverse=True):
        start = text.find(surface)
        while start != -1:
            end = start + len(surface)
            if not (words and _inside_word(text, start, end, words)):
                found.append((start, vocabulary[surface]))
                text = text[:start] + " " * len(surface) + text[end:]
            start = text.find(surface, end)
    values = list(dict.fromkeys(v for _, v in sorted(found)))
    return values, text


def _inside_word(text: str, start: int, end: int, words: str) -> bool:
    """Whether a two-character text[start:end] is the middle of a four-character word of `words`."""
    return start > 0 and end - start == 2 and text[start - 1 : end + 1] in words


def understand(
    question: str, catalog: Catalog, model: intent_model.IntentModel | None = None, *, learned: bool = True
) -> Query:
    """Extract intent and filters from a question (`model`: the learned intent model, default: the
    shipped one; the cue table alone decides when there is none or `learned` is off)."""
    text = re.sub(r"\s+", " ", question).strip()
    if catalog.pinyin is not None:
        text = catalog.pinyin.restore(text)
    rest = text
    categories, rest = _find(rest, {k: v for k, v in catalog.categories.items() if k.endswith("类")})
    departments, rest = _find(rest, catalog.departments, catalog.mentioned)
    towns, rest = _find(rest, catalog.towns)
    counties, rest = _find(rest, catalog.counties)
    search_text = re.sub(r"\s+", " ", _find(text, {**catalog.towns, **catalog.counties})[1]).strip()
    more_categories, rest = _find(rest, catalog.categories)
    categories += [c for c in more_categories if c not in categories]
    lists: list[ListKind] = []
    named: set[ListKind] = set()
    for word, kind in LIST_WORDS:
        if re.search(word, rest):
            if kind not in lists:
                lists.append(kind)
            if (word, kind) in LIST_NAMES:
                named.add(kind)
            rest = re.sub(word, " ", rest)
    across = bool(ACROSS_LISTS.search(text))
    if across:
        lists = [kind for kind in lists if kind in named]
    number = None
    match = _NUMBER.search(rest) or (_NTH_OF_LIST.search(rest) if named else None)
    if match:
        number = chinese_number(next(g for g in match.groups() if g))
        rest = rest[: match.start()] + " " + rest[match.end() :]

    intent, compare_mode = _intent(text, towns, number)
    scaffolding = bool((lists or departments or categories) and _only_scaffolding(rest))
    asks_figure = elsewhere = False
    cues = {
        f"cue_{intent.value}": 1.0,
        "number": float(number is not None),
        "two_towns": float(len(towns) >= 2),
        "both_towns": float(bool(BOTH_TOWNS.search(text))),
        "lists": float(bool(lists)),
        "departments": float(bool(departments)),
        "categories": float(bool(categories)),
        "scaffolding": float(scaffolding),
    }
    unknown = tuple(asked_places(text, catalog.known_places(), catalog.mentioned))
    unlisted_place = bool(unknown) and not (towns or counties)
    model = (model or intent_model.load_model()) if learned else None
    if model is not None:
        row = intent_model.features([masked(text, catalog, unknown)], [cues])  # read once, by every head
        prediction = model.predict(row)
        if unknown and "place" in model.heads:
            unlisted_place = prediction.place
        decided = Intent(prediction.intent)
        if decided is Intent.LOOKUP and number is None or decided is Intent.COMPARE and not compare_mode:
            decided = Intent.SINGLE  # a lookup needs a real 第N项; a comparison needs two townships
        intent = decided
        # "两镇的低保标准各是多少" asks for a figure as "低保标准是多少" does: compared, it is still none of theirs
        if intent in (Intent.SINGLE, Intent.COMPARE):
            # A comparison's search embeds its topic, not the question: its heads read the mean
            # vector (the question's would cost a second embedding, ~40 ms, and changed 1 of the
            # 391 train and dev comparisons' decisions)
            meaning = catalog.meaning if intent is Intent.SINGLE else None
            vector = meaning.vector(search_text or text) if meaning is not None and model.reads(meaning) else None
            asks_figure, elsewhere = model.asks(row, vector)
            elsewhere = elsewhere and not asks_figure
    if intent is Intent.SINGLE and scaffolding and not (asks_figure or elsewhere):
        intent = Intent.ENUMERATE  # "二工镇的收回事项", "收回到民政局的事项" ask for the set itself
    sets = (Intent.ENUMERATE, Intent.COUNT, Intent.COMPARE)
    topic = _topic(_QUESTION_MARKS.sub(" ", rest)) if intent in sets else re.sub(r"\s+", " ", rest).strip()
    # A subject the lists name ("党代表的推选和联络…是不是得配合县里", "工会这块…对比下"), or the
    # township's own part set against the assisted one, is compared whole: a list verb or a
    # department says which part, it filters nothing
    whole = intent is Intent.COMPARE and (across or any(term in catalog.mentioned for term in key_terms(topic)))
    if whole:
        topic, departments = " ".join([*departments, topic]), []
    elif intent is Intent.COMPARE and departments and not CONTRAST_CUES.search(text):
        intent = Intent.ENUMERATE  # "两个镇涉及教育局的事项都有啥": one department's items in both
    if intent is not Intent.COMPARE:
        compare_mode = ""
    if whole or intent is Intent.SINGLE:
        lists = [kind for kind in lists if kind in named]
    return Query(
        text=text,
        intent=intent,
        towns=tuple(towns),
        counties=tuple(counties),
        lists=tuple(lists),
        categories=tuple(categories),
        departments=tuple(departments),
        number=number,
        topic=topic,
        search_text=search_text,
        compare_mode=compare_mode,
        asks_figure=asks_figure,
        elsewhere=elsewhere,
        cues=cues,
        unknown_places=unknown,
        unlisted_place=unlisted_place,
    )


def _topic(rest: str) -> str:
    """What a set question is about: its words, less those made only of frame words. Word by word,
    so that a frame character inside a word stays (cut by character, 公共法律服务 became 公 法律服务)."""
    kept = (w if FRAME_WORDS.sub("", w) else " " for w in segment(rest))
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def masked(text: str, catalog: Catalog, unknown: Sequence[str] = ()) -> str:
    """The question with the loaded townships and counties, and the `unknown` places, replaced by
    placeholders, so that a learned model sees the wording, not the names."""
    rest = text
    for surface in sorted(catalog.towns, key=len, reverse=True):
        rest = rest.replace(surface, "某镇")
    for surface in sorted(catalog.counties, key=len, reverse=True):
        rest = rest.replace(surface, "某县")
    for surface in sorted(unknown, key=len, reverse=True):
        rest = rest.replace(surface, "某地")
    return rest


def _intent(text: str, towns: list[str], number: int | None) -> tuple[Intent, str]:
    """The cue table's verdict, and the comparison mode whenever two townships are compared."""
    mode = ""
    if len(towns) >= 2 or BOTH_TOWNS.search(text):
        if _one_sided(text, towns):
            mode = "only"
        elif re.search(r"都有|共同", text):
            mode = "both"
        elif re.search(r"(?<!不)相同|(?<!不)一样", text):
            mode = "all"  # "是不是一样": every item, pair by pair, and what one side has alone
        else:
            mode = "diff"
    if number is not None and not re.search(r"多少|几项", text):
        return Intent.LOOKUP, mode
    if mode and COMPARE_CUES.search(text):
        return Intent.COMPARE, mode
    for intent, cue in INTENT_CUES:
        if cue.search(text):
            return intent, mode
    return Intent.SINGLE, mode


def _one_sided(text: str, towns: list[str]) -> bool:
    """Whether the question asks what one side has and the other lacks: a one-sided cue said of a
    township ("半截沟镇没有的", "二工比半截沟多出"), not of the situation ("没有取水许可偷偷抽水",
    "老人八十多了")."""
    sides = "|".join([*(re.escape(t.rstrip("镇乡")) for t in towns), "镇", "乡", "方", "边"])
    return any(
        re.search(rf"(?:{sides})[^，。？?！!；;,]{{0,4}}$", text[: cue.start()]) for cue in ONLY_CUES.finditer(text)
    )


_QUESTION_MARKS = re.compile(
    r"[，。？！?!、：:；;,.]|吗|呢|吧|啊|呀|请问|一下|看看|查查|说说|讲讲|告诉我|介绍"
    r"|数量统计|帮忙统计|统计一下|梳理|盘点|摸个?底"  # asking for a set to be drawn up, not its subject
)
_SCAFFOLDING = re.compile(
    r"[的是有哪些什么吗呢吧啊呀了都和与及个项条件类事项清单内容列出看看查查一下请问我们镇里乡里上县本全部所有给说讲介绍\s，。？！?!、：:；;]"
)


def _only_scaffolding(rest: str) -> bool:
    return not _SCAFFOLDING.sub("", rest)
