"""HTML for answers, items and data summaries: pure functions of the assistant's results.

Every piece of text from data or users is escaped here. Output is a single line without
blank lines, so the chat's Markdown renderer passes it through as one HTML block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import PurePath

from assistant.answering.answer import RELATED_TITLE, Answer, pairs_label
from assistant.answering.citations import MARKER, marker_id
from assistant.answering.query import Intent
from assistant.answering.retrieve import Pair, Retrieval
from assistant.items import DutyItem, ListKind

CHIP_LIST = {ListKind.BASIC: "基本", ListKind.COORDINATED: "配合", ListKind.WITHDRAWN: "收回"}
SET_INTENTS = {Intent.ENUMERATE, Intent.COUNT, Intent.COMPARE}
INTENT_LABELS = {
    Intent.SINGLE: "单项问题（混合检索）",
    Intent.LOOKUP: "按序号查找",
    Intent.ENUMERATE: "列举（按条件筛选全集）",
    Intent.COUNT: "计数（按条件筛选全集）",
    Intent.COMPARE: "两镇对比（按事项名称对齐）",
}
ABSTAIN_BANNER = "未找到依据：现有清单没有覆盖这个问题，以下不是答案。"


def chip_label(item: DutyItem) -> str:
    """Short citation: 二工镇·配合·22."""
    return f"{item.town}·{CHIP_LIST[item.list]}·{item.number}"


def chip(item: DutyItem, *, kind: str = "cite") -> str:
    """A button that opens the whole item in the side panel (see CHIP_JS in ui.app)."""
    tip = escape(f"{item.citation}{item.title}", quote=True)
    return (
        f'<button type="button" class="chip chip-{kind}" value="{escape(item.id, quote=True)}" title="{tip}">'
        f"{escape(chip_label(item))}</button>"
    )


def text_with_chips(text: str, cited: Mapping[str, DutyItem]) -> str:
    """Escaped text whose citation markers become chips; a marker of an item that is not
    among the citations is flagged instead of linked."""
    parts, last = [], 0
    for match in MARKER.finditer(text):
        parts.append(_lines(text[last : match.start()]))
        item = cited.get(marker_id(match) or "")
        if item is not None:
            parts.append(chip(item))
        else:
            parts.append(f'<span class="bad-cite" title="未经核实的引用">{escape(match.group(0))}</span>')
        last = match.end()
    parts.append(_lines(text[last:]))
    return "".join(parts)


def _lines(text: str) -> str:
    return escape(text).replace("\n", "<br>")


def streaming_html(text: str) -> str:
    """A partial answer while it is being generated."""
    return f'<div class="answer streaming">{_lines(text) or "正在检索……"}</div>'


def is_set_answer(answer: Answer) -> bool:
    retrieval = answer.retrieval
    return bool(retrieval and retrieval.complete and not answer.abstained and retrieval.query.intent in SET_INTENTS)


def answer_html(answer: Answer) -> str:
    """The complete rendering of a finished answer."""
    cited = {item.id: item for item in answer.citations}
    parts = []
    if answer.abstained and not (answer.retrieval and answer.retrieval.refusal):  # a refusal says why itself
        parts.append(f'<div class="abstain-banner">{ABSTAIN_BANNER}</div>')
    if is_set_answer(answer):
        parts.append(_set_answer(answer, cited))
    else:
        parts.append(f'<div class="answer-text">{text_with_chips(answer.text, cited)}</div>')
        if answer.citations:
            chips = " ".join(chip(item) for item in answer.citations)
            parts.append(f'<div class="sources"><span class="sources-label">依据：</span>{chips}</div>')
    for note in answer.notes:
        parts.append(f'<div class="note">注：{escape(note)}</div>')
    if answer.related:
        parts.append(related_html(answer.related))
    parts.append(timing_html(answer.timings))
    if answer.retrieval is not None:
        parts.append(retrieval_html(answer.retrieval, answer.meta.get("resolved_question", "")))
    kind = " abstained" if answer.abstained else ""
    return f'<div class="answer{kind}">{"".join(parts)}</div>'


def related_html(items: Sequence[DutyItem]) -> str:
    rows = "".join(f"<li>{chip(item, kind='related')} {escape(item.title)}</li>" for item in items)
    return f'<div class="related"><div class="related-title">{RELATED_TITLE}</div><ul>{rows}</ul></div>'


def _set_answer(answer: Answer, cited: Mapping[str, DutyItem]) -> str:
    """The answer's summary lines, then the complete set as tables built from the retrieval."""
    summary = f'<div class="answer-text">{text_with_chips(set_summary(answer.text), cited)}</div>'
    if answer.retrieval.query.intent is Intent.COMPARE:
        return summary + _comparison(answer.retrieval)
    return summary + items_table(answer.citations)


def set_summary(text: str) -> str:
    """A set answer's text without its item list (bullets and their group headings), which
    the table shows instead; an LLM overview above the list stays."""
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith("- ") and not line.endswith("："))


def items_table(items: Sequence[DutyItem]) -> str:
    """Every item of a set, one row each: a complete table, never truncated."""
    rows = "".join(
        f"<tr><td>{n}</td><td>{chip(item)}</td><td>{escape(item.category)}</td><td>{escape(item.title)}</td>"
        f"<td>{escape('、'.join(item.involved_departments))}</td></tr>"
        for n, item in enumerate(items, 1)
    )
    return (
        f'<div class="table-wrap"><table class="items"><thead><tr><th>#</th><th>出处</th><th>事项类别</th>'
        f"<th>事项名称</th><th>牵头/承接部门</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _comparison(retrieval: Retrieval) -> str:
    parts = []
    for town, items in retrieval.only.items():
        others = "、".join(t for t in retrieval.only if t != town) or "另一镇"
        parts.append(f"<h4>{escape(town)}有而{escape(others)}没有的事项（{len(items)}项）</h4>")
        parts.append(items_table(items) if items else "<p>无。</p>")
    if retrieval.pairs:
        parts.append(f"<h4>{pairs_label(retrieval)}（{len(retrieval.pairs)}对）</h4>{pairs_table(retrieval.pairs)}")
    return "".join(parts)


def pairs_table(pairs: Sequence[Pair]) -> str:
    rows = "".join(
        f"<tr><td>{chip(p.left)} {escape(p.left.title)}</td><td>{chip(p.right)} {escape(p.right.title)}</td>"
        f"<td>{escape('、'.join(p.differences))}</td></tr>"
        for p in pairs
    )
    return (
        '<div class="table-wrap"><table class="items"><thead><tr><th>事项</th><th>对应事项</th><th>差异</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def timing_html(timings: Mapping[str, float]) -> str:
    """Retrieval and generation time; generation is what the total spent beyond retrieval."""
    shown = []
    if "retrieval" in timings:
        shown.append(f"检索 {timings['retrieval']:.2f} 秒")
    if "first_token" in timings and "total" in timings:
        shown.append(f"生成 {timings['total'] - timings.get('retrieval', 0.0):.2f} 秒")
        shown.append(f"首字 {timings['first_token']:.2f} 秒")
    if "total" in timings:
        shown.append(f"共计 {timings['total']:.2f} 秒")
    return f'<div class="timing">用时：{" · ".join(shown) or "—"}</div>'


def retrieval_html(retrieval: Retrieval, resolved: str = "") -> str:
    """The "检索详情" disclosure: how the question was read and what was retrieved, with scores."""
    query = retrieval.query
    facts = [f"结合上文理解为：{resolved}"] if resolved else []
    facts.append(f"问题类型：{INTENT_LABELS.get(query.intent, query.intent.value)}")
    if query.towns:
        facts.append("乡镇：" + "、".join(query.towns))
    if query.lists:
        facts.append("清单：" + "、".join(k.short for k in query.lists))
    if query.categories:
        facts.append("类别：" + "、".join(query.categories))
    if query.departments:
        facts.append("部门：" + "、".join(query.departments))
    if retrieval.note:
        facts.append("说明：" + retrieval.note)
    cited = {item.id for item in retrieval.cited}
    if retrieval.hits:
        rows = "".join(
            f'<tr class="{"cited" if h.item.id in cited else ""}"><td>{n}</td><td>{chip(h.item, kind="hit")}</td>'
            f"<td>{escape(h.item.title)}</td><td>{h.score:.4f}</td><td>{h.dense:.3f}</td><td>{h.keyword:.2f}</td>"
            f"<td>{h.relevance:.2f}</td><td>{'是' if h.item.id in cited else ('达标' if h.relevant else '否')}</td></tr>"
            for n, h in enumerate(retrieval.hits[:20], 1)
        )
        table = (
            '<div class="table-wrap"><table class="hits"><thead><tr><th>#</th><th>事项</th><th>名称</th>'
            '<th title="排名融合分">融合</th><th title="向量余弦相似度">向量</th><th title="BM25 关键词分">关键词</th>'
            '<th title="相关度（达到阈值才可引用）">相关度</th><th>引用</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    else:
        table = f"<p>按条件直接筛选，共 {len(retrieval.cited)} 项，未做相似度排序。</p>"
    facts_html = "".join(f"<li>{escape(f)}</li>" for f in facts)
    return (
        f'<details class="retrieval"><summary>检索详情（{len(retrieval.hits)} 条候选，'
        f"{retrieval.seconds:.2f} 秒）</summary><ul>{facts_html}</ul>{table}</details>"
    )


def item_html(item: DutyItem, elsewhere: Sequence[DutyItem] = ()) -> str:
    """Every column of an item, duties as numbered steps; `elsewhere`: the same duty in other
    townships, as chips."""
    fields = [
        ("乡镇", f"{item.town}（{item.prefecture}{item.county}）"),
        ("清单", item.list.label),
        ("序号", f"第{item.number}项"),
        ("事项类别", item.category),
    ]
    if item.departments:
        fields.append(("对应上级部门", "、".join(item.departments)))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in fields)
    sections = []
    if item.department_duties:
        sections.append(_steps("上级部门职责", item.department_duties))
    if item.township_duties:
        sections.append(_steps("乡镇配合职责", item.township_duties))
    if item.receivers:
        receivers = "".join(
            f"<li><b>{escape(r.department or '（未注明部门）')}</b>：{escape(r.handling)}</li>" for r in item.receivers
        )
        sections.append(f"<h4>承接部门及工作方式</h4><ul>{receivers}</ul>")
    source = f"{PurePath(item.source).name} 第{item.line}行" if item.source else ""
    footer = f'<div class="source">来源：{escape(source)}</div>' if source else ""
    if elsewhere:
        chips = " ".join(chip(other) for other in elsewhere)
        footer += f'<div class="item-links">其他乡镇的同一事项：{chips}</div>'
    return (
        f'<div class="item" data-id="{escape(item.id, quote=True)}"><div class="item-head">'
        f'<span class="item-cite">{escape(chip_label(item))}</span><h3>{escape(item.title)}</h3></div>'
        f"<dl>{rows}</dl>{''.join(sections)}{footer}</div>"
    )


def _steps(title: str, steps: Iterable[str]) -> str:
    return f"<h4>{escape(title)}</h4><ol>" + "".join(f"<li>{escape(s)}</li>" for s in steps) + "</ol>"


def side_by_side_html(item: DutyItem, counterpart: DutyItem | None, other_town: str) -> str:
    """The same duty in two townships, next to each other."""
    if counterpart is None:
        right = f'<div class="missing">{escape(other_town)}的清单中没有与之对应的事项（按事项名称对齐）。</div>'
    else:
        right = item_html(counterpart)
    return f'<div class="side-by-side"><div>{item_html(item)}</div><div>{right}</div></div>'


def about_html(manifest: Mapping, *, items: int, llm: str | None, index_folder: str) -> str:
    """The "关于数据" panel: what is loaded and when it was built."""
    rows = "".join(_document_row(document) for document in manifest.get("documents", []))
    heads = "".join(f"<th>{kind.short}</th>" for kind in ListKind)
    facts = [
        ("索引建立时间", local_time(manifest.get("built", ""))),
        ("事项总数", f"{items} 项"),
        ("向量模型", manifest.get("embedder", "")),
        ("索引位置", index_folder),
        ("回答方式", f"大模型（{llm}）" if llm else "抽取式（未配置大模型，回答全部摘自清单原文）"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts)
    return (
        f'<div class="about"><table class="items"><thead><tr><th>文件</th><th>乡镇</th><th>县</th>{heads}'
        f"<th>合计</th></tr></thead><tbody>{rows}</tbody></table><dl>{dl}</dl></div>"
    )


def _document_row(document: Mapping) -> str:
    source = str(document.get("source", ""))
    counts = document.get("counts", {})
    cells = [PurePath(source).name, document.get("town", ""), document.get("county", "")]
    cells += [str(counts.get(kind.value, 0)) for kind in ListKind] + [str(sum(counts.values()))]
    return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso or "未知"


# ASCII punctuation that Markdown, GFM autolinks or LaTeX give a meaning: as numeric character
# references it shows the same but can never form an image, a link or a formula.
_MARKDOWN_SYNTAX = {ord(c): f"&#{ord(c)};" for c in "!#$()*+-:[\\]_`{|}~"}


def plain_html(text: str) -> str:
    """User text shown exactly as typed, never interpreted: escaped HTML in one HTML block.

    A question like `![x](http://host/x.png)` rendered as Markdown would make the browser
    fetch that URL; inside an HTML block with its syntax characters as references, it stays text.
    """
    escaped = escape(text).translate(_MARKDOWN_SYNTAX)
    lines = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")
    return f'<div class="plain">{lines}</div>'


def error_html(message: str) -> str:
    return f'<div class="error">⚠ {escape(message)}</div>'


def placeholder_html(text: str) -> str:
    return f'<div class="placeholder">{escape(text)}</div>'
