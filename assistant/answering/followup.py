"""Multi-turn: resolve a follow-up question against the conversation before retrieval.

Rule-based, so it works with no language model (and is the fallback when the model's
rewrite fails). A self-contained question passes through unchanged; otherwise, in order:

- "还有吗？"                        → the previous question again, minus the items already cited;
- "第二项具体要做什么？" / "第2个呢" → the previous answer's 2nd cited item, named in full;
- "这项…" (one item cited)          → that item, named in full;
- a new topic, number or filter ("那收养登记呢？", "其中交通运输类的呢")
                                    → the question, with the previous question's filters it lacks;
- after a comparison, a new topic ("那消防呢") → the same comparison of the new topic;
- "那半截沟镇呢？" / "那配合事项呢"  → the previous question with the township / list swapped (also
                                    when its only other words repeat the previous question's);
- anything else that leans on context ("具体报给哪个部门？") → previous question + this one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from assistant.answering.answer import Answer
from assistant.answering.query import LIST_WORDS, Catalog, Intent, Query, chinese_number, understand
from assistant.answering.retrieve import Retrieval
from assistant.index.keywords import key_terms
from assistant.items import DutyItem


@dataclass
class Turn:
    question: str
    answer: Answer | None = None

    @property
    def resolved_question(self) -> str:
        """What this turn actually asked, after its own follow-up resolution."""
        return (self.answer.resolved_question if self.answer else "") or self.question

    @property
    def cited_ids(self) -> tuple[str, ...]:
        """Items this turn cited, plus those an earlier "还有吗" had already excluded."""
        if self.answer is None:
            return ()
        return tuple(dict.fromkeys([*self.answer.excluded, *(i.id for i in self.answer.citations)]))


@dataclass(frozen=True)
class Resolution:
    original: str
    question: str  # what to retrieve with
    rule: str = ""  # which rule rewrote it; "" for a self-contained question
    exclude: tuple[str, ...] = ()  # item ids not to cite again
    query: Query | None = field(default=None, compare=False)  # the question understood, when it was

    @property
    def rewritten(self) -> bool:
        return bool(self.rule)


MORE = re.compile(
    r"(?:那|那么)?(?:(?:还有|其他|其它|别的|另外)(?:别的|其他|其它|的|相关|事项|内容|项|吗|呢|没有|么|啥|什么)*|继续|再来几[项条个])"
    r"[？?。！!]*"
)
ORDINAL = re.compile(r"第\s*([0-9０-９]+|[一二两三四五六七八九十]+)\s*(?:项|个|条|点|件)?")
THIS_ITEM = re.compile(r"这一?项|该项|此项|这个事项|该事项|这一?条|这件事")
FOLLOWUP_CUE = re.compile(
    r"^(?:那|那么|其中|另外|还有)|呢[？?。!！]*$|也是这样|一样吗|同样吗|也一样|这一?项|该项|这个|(?<!其)它"
)
# Words that ask about an item without naming a topic: what remains after them is the topic.
NO_TOPIC = re.compile(
    r"其中|那么|那|呢|吗|吧|也|这样|一样|同样|还是|是不是|具体|需要|要|是|的|哪个|哪些|哪几[项个条]|什么|怎么|谁|"
    r"上级|部门|单位|牵头|负责|主管|管|承接|指导|报给|上报|报|给|县里|县上|镇里|镇上|乡里|这一?项|该项|这个|它|"
    r"换成|换到|改成|改为|如果是|要是|假如|"
    # what is asked about a subject, not a subject: "需要什么材料？" after "低保谁审核"
    r"材料|手续|证件|流程|程序|步骤|费用|多少钱|多少|多久|多长时间|几天|时候|时间|期限|截止|标准|条件|"
    r"电话|地址|地点|哪里|哪儿|在哪|去哪|找谁|办理|怎么办|办|带|交|能|批|下来|"
    r"[？?，,。！!、：:；;\s]"
)


def resolve(question: str, history: Sequence[Turn], catalog: Catalog) -> Resolution:
    """The question to retrieve with, given the turns before it (oldest first)."""
    question = question.strip()
    if not history:
        return Resolution(question, question)
    previous = history[-1]
    earlier = previous.resolved_question
    if MORE.fullmatch(question) and previous.answer is not None:
        return Resolution(question, earlier, "more", previous.cited_ids)
    query = understand(question, catalog)
    cited = previous.answer.citations if previous.answer else []
    ordinal = _ordinal(question)
    if ordinal and not (query.towns or query.lists) and len(cited) >= max(ordinal, 2):
        return Resolution(question, _about(cited[ordinal - 1], ORDINAL.sub("", question, count=1)), "ordinal")
    if THIS_ITEM.search(question) and len(cited) == 1:
        return Resolution(question, _about(cited[0], THIS_ITEM.sub("", question, count=1)), "this")
    topical = has_topic(question, catalog, known=earlier)
    if not _leans_on_context(question, query, topical):
        return Resolution(question, question, query=query)
    before = understand(earlier, catalog)
    if (
        topical
        and before.intent is Intent.COMPARE
        and query.intent in (Intent.SINGLE, Intent.ENUMERATE)
        and not query.towns
    ):
        return Resolution(question, _compared(earlier, before, question), "compare")
    if topical or query.number is not None or query.departments or query.categories:
        return Resolution(question, _carried_filters(before, query, catalog) + _bare(question), "carry")
    if query.towns or query.lists:
        return Resolution(question, _swap_scope(earlier, before, query, catalog), "scope")
    return Resolution(question, f"{earlier} {question}", "continue")


def has_topic(question: str, catalog: Catalog, known: str = "") -> bool:
    """Whether the question names something to search for besides places, lists, asking words
    and the words of `known` (the previous question: "那在半截沟镇申请呢" repeats its 申请)."""
    rest = question
    for vocabulary in (catalog.towns, catalog.counties, catalog.categories, catalog.departments):
        for surface in sorted(vocabulary, key=len, reverse=True):
            rest = rest.replace(surface, " ")
    for word, _ in LIST_WORDS:
        rest = rest.replace(word, " ")
    rest = ORDINAL.sub(" ", rest)
    return any(term not in known for term in key_terms(NO_TOPIC.sub(" ", rest)))


def narrow(retrieval: Retrieval, exclude: Sequence[str], top_k: int) -> Retrieval:
    """The retrieval without the excluded items: "还有吗" asks for the next ones."""
    if not exclude:
        return retrieval
    excluded = set(exclude)
    if retrieval.complete:
        cited = [item for item in retrieval.cited if item.id not in excluded]
    else:
        cited = [h.item for h in retrieval.hits if h.relevant and h.item.id not in excluded][:top_k]
    hits = [h for h in retrieval.hits if h.item.id not in excluded]
    narrowed = replace(retrieval, cited=cited, hits=hits)
    if not cited:
        narrowed.abstained = True
        narrowed.note = "除已列出的事项外，清单中没有更多相关事项"
    return narrowed


def _bare(question: str) -> str:
    """The question without the words that only mark it as a follow-up ("那…呢", "其中")."""
    return re.sub(r"^(?:那么|那|其中|另外)|呢(?=[？?。!！]*$)", "", question).strip() or question


def _ordinal(question: str) -> int | None:
    match = ORDINAL.search(question)
    return chinese_number(match.group(1)) if match else None


def _about(item: DutyItem, rest: str) -> str:
    """A self-contained question about one item: its full reference plus what is asked."""
    rest = _bare(rest.strip().removeprefix("的"))
    reference = f"{item.town}{item.list.label}第{item.number}项"
    return reference + (rest if rest.strip("？?。！! ") else "是什么？")


def _leans_on_context(question: str, query: Query, topical: bool) -> bool:
    if FOLLOWUP_CUE.search(question):
        return not (query.intent is Intent.LOOKUP and query.towns and query.lists)
    return not topical and query.intent is Intent.SINGLE


def _compared(earlier: str, before: Query, question: str) -> str:
    """The earlier comparison asked of the new subject: after "两个镇在防汛上有什么不同", "那消防呢"
    compares 消防 (carried as filters, it was asked of 消防 alone)."""
    subject = _bare(question).rstrip("？?。！! ")
    words = before.topic.split()
    if len(words) == 1:
        core = re.sub(r"(?:上|方面|这块|这一块)$", "", words[0]) or words[0]  # 防汛 of 在防汛上
        if core in earlier:
            return earlier.replace(core, subject, 1)
    towns = "和".join(before.towns) if len(before.towns) >= 2 else "两个镇"
    return f"{towns}在{subject}上有什么不同？"


def _swap_scope(earlier: str, before: Query, query: Query, catalog: Catalog) -> str:
    """The earlier question with its township(s) and list replaced by the ones now named."""
    text = earlier
    if query.towns:
        towns = "、".join(query.towns)
        surfaces = [s for s, town in catalog.towns.items() if town in before.towns]
        text = _replace_first(text, surfaces, towns) if surfaces and before.towns else towns + text
    if query.lists:
        label = "、".join(kind.label for kind in query.lists)
        words = [word for word, kind in LIST_WORDS if kind in before.lists]
        pattern = "|".join(re.escape(w) + r"(?:事项)?(?:清单)?" for w in sorted(words, key=len, reverse=True))
        text = re.sub(pattern, label, text, count=1) if words else label + text
    return text


def _replace_first(text: str, surfaces: list[str], replacement: str) -> str:
    """Replace the first township mention with `replacement` and drop the others."""
    pattern = re.compile("|".join(re.escape(s) for s in sorted(surfaces, key=len, reverse=True)))
    done = False

    def swap(match: re.Match) -> str:
        nonlocal done
        first, done = not done, True
        return replacement if first else ""

    return pattern.sub(swap, text)


def _carried_filters(before: Query, query: Query, catalog: Catalog) -> str:
    """The earlier question's filters that the new one does not set itself, as words."""
    words = []
    if before.towns and not query.towns:
        words.append("、".join(before.towns))
    if before.lists and not query.lists:
        words.append("、".join(kind.label for kind in before.lists))
    if before.departments and not query.departments:
        names = {
            key: max((s for s, k in catalog.departments.items() if k == key), key=len) for key in before.departments
        }
        words.append("、".join(names.values()))
    if before.categories and not query.categories:
        words.append("、".join(before.categories) + "类")
    return " ".join(words) + " " if words else ""
