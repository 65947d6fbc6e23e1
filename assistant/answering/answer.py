"""Extractive answers: short Chinese text composed from the retrieved items, every item cited.

Nothing here invents content: each sentence is built from an item's own fields, and the
answer cites exactly the items the retrieval selected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.answering.query import Intent
from assistant.answering.retrieve import Retrieval
from assistant.items import DutyItem, ListKind

ABSTAIN_TEXT = "现有履职事项清单中没有找到与这个问题相关的事项，无法依据清单回答。"
OUT_OF_SCOPE_TEXT = {
    "place": "{note}，无法依据清单回答。下面列出的已加载乡镇的相近事项仅供参考，不是这个问题的依据。",
    "figure": "{note}，无法依据清单给出这个数字或信息，请向负责部门咨询。负责这项工作的事项见“相关事项”。",
    "service": "{note}，现有履职事项清单中没有相关事项，无法依据清单回答。下面的相近事项仅供参考。",
}
RELATED_TITLE = "相关事项（仅供参考，不是回答的依据）"
ALTERNATIVES_TEXT = "这个问题可能涉及两项不同的事项，请按实际情况对照（第一项可能性更大）："
STEPS_SHOWN = 4  # per duty column in a short answer; the full item is one click / command away


@dataclass
class Answer:
    question: str
    text: str
    citations: list[DutyItem] = field(default_factory=list)
    abstained: bool = False
    related: list[DutyItem] = field(default_factory=list)  # shown beside a declined answer, never cited
    retrieval: Retrieval | None = None
    generator: str = "extractive"
    invalid_citations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "LLM unreachable, extractive answer shown"
    timings: dict[str, float] = field(default_factory=dict)
    resolved_question: str = ""  # a follow-up as it was understood ("" when self-contained)
    followup_rule: str = ""  # which follow-up rule (or "llm") rewrote it
    excluded: list[str] = field(default_factory=list)  # item ids an earlier "还有吗" already listed
    meta: dict = field(default_factory=dict)  # provenance for logs and reports: models, prompt, tokens

    def to_json(self) -> dict:
        """The `ask --json` contract: keep these keys stable."""
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [citation_json(item) for item in self.citations],
            "abstained": self.abstained,
            "generator": self.generator,
            "invalid_citations": self.invalid_citations,
            "related": [citation_json(item) for item in self.related],
        }

    def full_text(self) -> str:
        """The text with the related items written out, for clients that show nothing else (a
        chat tool through the API): a declined answer refers to its 相关事项."""
        return f"{self.text}\n\n{related_text(self.related)}" if self.related else self.text


def citation_json(item: DutyItem) -> dict:
    return {
        "town": item.town,
        "county": item.county,
        "list": item.list.value,
        "number": item.number,
        "title": item.title,
    }


def related_text(items: Sequence[DutyItem]) -> str:
    """Related items as plain lines, without citation brackets: a client that sends the text
    back as history must not turn them into citations."""
    lines = [f"- {item.town}·{item.list.short}·第{item.number}项「{item.title}」" for item in items]
    return "\n".join([f"{RELATED_TITLE}：", *lines])


def compose(question: str, retrieval: Retrieval) -> Answer:
    """The offline answer for a retrieval result."""
    query = retrieval.query
    if retrieval.refusal:
        return Answer(question, retrieval.refusal, abstained=True, retrieval=retrieval)
    if retrieval.abstained and retrieval.scope:
        text = OUT_OF_SCOPE_TEXT[retrieval.scope].format(note=retrieval.note)
        return Answer(question, text, abstained=True, related=retrieval.related, retrieval=retrieval)
    if retrieval.abstained:
        text = ABSTAIN_TEXT if query.intent is Intent.SINGLE else f"{ABSTAIN_TEXT}（{retrieval.note}）"
        return Answer(question, text, abstained=True, related=retrieval.related, retrieval=retrieval)
    if query.intent is Intent.COMPARE:
        text = _comparison(retrieval)
    elif retrieval.complete and query.intent is not Intent.LOOKUP:
        text = _set_summary(retrieval)
    elif retrieval.alternatives:
        text = _alternatives(retrieval)
    else:
        text = "\n\n".join(describe(item) for item in retrieval.cited)
        if retrieval.note:
            text = f"{retrieval.note}：\n\n{text}"
    return Answer(question, text, citations=list(retrieval.cited), retrieval=retrieval)


def _alternatives(retrieval: Retrieval) -> str:
    """Two duties about equally likely: the likelier first, each under its own title."""
    second = {item.id for item in retrieval.alternatives}
    first = [item for item in retrieval.cited if item.id not in second]
    parts = [ALTERNATIVES_TEXT]
    for label, items in (("一", first), ("二", retrieval.alternatives)):
        titles = "、".join(dict.fromkeys(f"「{item.title}」" for item in items))
        parts.append(f"{label}、如果问的是{titles}：\n" + "\n".join(describe(item) for item in items))
    return "\n\n".join(parts)


def describe(item: DutyItem, steps: int = STEPS_SHOWN) -> str:
    """What the township must do for one item, and who else is involved."""
    head = f"{item.citation}「{item.title}」"
    if item.list is ListKind.BASIC:
        return f"{head}属于{item.town}基本履职事项（{item.category}），由乡镇自己负责。"
    if item.list is ListKind.COORDINATED:
        lead = "、".join(item.departments)
        text = f"{head}属于{item.town}配合履职事项，由{lead}牵头，乡镇配合。乡镇要做的：{_steps(item.township_duties, steps)}"
        if item.department_duties:
            text += f"\n上级部门负责：{_steps(item.department_duties, steps)}"
        return text
    receivers = "、".join(r.department for r in item.receivers if r.department) or "上级部门"
    text = f"{head}已列入{item.town}上级部门收回事项，不再由乡镇承担，现由{receivers}负责。"
    if len(item.receivers) == 1 and item.receivers[0].handling:
        text += f"工作方式：{_clip(item.receivers[0].handling, 120)}"
    elif len(item.receivers) > 1:
        text += "工作方式：" + " ".join(f"{r.department}：{_clip(r.handling, 60)}" for r in item.receivers)
    return text


def _steps(steps: tuple[str, ...], limit: int) -> str:
    shown = [f"{i}.{s}" for i, s in enumerate(steps[:limit], 1)]
    more = f"（另有{len(steps) - limit}项，见事项全文）" if len(steps) > limit else ""
    return "；".join(shown) + more


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _summary(retrieval: Retrieval) -> str:
    """'二工镇配合履职事项中涉及水利局的共9项。' — what the set is, and its computed size."""
    query, items = retrieval.query, retrieval.cited
    towns = list(query.towns) or list(dict.fromkeys(i.town for i in items))
    subject = "、".join(towns) if len(towns) <= 3 else f"{len(towns)}个乡镇"
    lists = "、".join(k.label.removesuffix("清单") for k in query.lists) or "履职事项清单"
    qualifiers = []
    if query.categories:
        qualifiers.append("、".join(f"“{c}”类" for c in query.categories))
    if query.departments:
        qualifiers.append("涉及" + "、".join(query.departments))
    if query.topic and retrieval.hits:
        qualifiers.append(f"与“{query.topic}”相关")
    if qualifiers:
        return f"{subject}{lists}中{'、'.join(qualifiers)}的事项共{len(items)}项。"
    return f"{subject}{lists}共{len(items)}项。"


def _set_summary(retrieval: Retrieval) -> str:
    """One summary line with the computed count, then every item grouped by township and list."""
    items = retrieval.cited
    summary = _summary(retrieval)
    if retrieval.note:
        summary += f"（{retrieval.note}）"
    groups: dict[tuple[str, ListKind], list[DutyItem]] = defaultdict(list)
    for item in items:
        groups[(item.town, item.list)].append(item)
    lines = [summary]
    for (town, kind), group in groups.items():
        lines.append(f"\n{town}·{kind.label.removesuffix('清单')}（{len(group)}项）：")
        lines.extend(f"- {item.citation}{item.title}{_who(item)}" for item in group)
    return "\n".join(lines)


def _who(item: DutyItem) -> str:
    departments = item.involved_departments
    if not departments:
        return ""
    label = "牵头" if item.list is ListKind.COORDINATED else "承接"
    return f"（{label}：{'、'.join(departments)}）"


def pairs_label(retrieval: Retrieval) -> str:
    """What a comparison's pairs are: those both have, every pair, or only those that differ."""
    return {"both": "两镇都有的事项", "all": "两镇的对应事项"}.get(
        retrieval.query.compare_mode, "两镇都有但内容不同的事项"
    )


def _comparison(retrieval: Retrieval) -> str:
    lines = []
    total = len(retrieval.cited)
    for town, items in retrieval.only.items():
        others = [t for t in retrieval.compared if t != town]
        lines.append(f"{town}有而{'、'.join(others)}没有的事项共{len(items)}项：")
        lines.extend(f"- {item.citation}{item.title}" for item in items)
    if retrieval.pairs:
        lines.append(f"{pairs_label(retrieval)}共{len(retrieval.pairs)}对：")
        for pair in retrieval.pairs:
            diff = f"（{'、'.join(pair.differences)}）" if pair.differences else "（内容一致）"
            lines.append(f"- {pair.left.citation}{pair.left.title} ↔ {pair.right.citation}{pair.right.title}{diff}")
    if not total:
        lines.append("按事项名称对齐后没有发现差异。")
    lines.append(f"（{retrieval.note}）")
    return "\n".join(lines)
