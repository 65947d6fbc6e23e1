"""Synthetic scale corpus, for benchmarks only (never for answers).

N townships made by varying the two real lists: the real two first, then townships with
invented names (grouped 15 to a county) whose lists are one of the real lists with some
items dropped, some taken from the other list, items reordered within a category,
renumbered, the place names in the text replaced and the step order of some items
reversed. The files are written in the text-export format and go through the normal
parser, so ingest cost is the real one.

Every synthetic item comes from a real item, and `Corpus.sources` maps the text that is
embedded for it (`index.dense_text`) to its real item's: a benchmark can then index with
the real model's vectors of the real texts instead of embedding ~120k texts (hours on two
cores), and measure the embedding rate separately on a sample.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant.index import dense_text
from assistant.ingest.parsing import Document, parse_file
from assistant.items import DutyItem, ListKind
from assistant.settings import CORPUS_DIR

PREFECTURE = "昌吉回族自治州"
TOWNS_PER_COUNTY = 15
_TOWN_FIRST = "甘柳杨榆桦梧桐松柏枫梨杏桃枣槐"
_TOWN_MIDDLE = "东西南北上下前后新老"
_TOWN_LAST = "泉沟湾坪塘岭峪堡屯寨滩坝渠井庄"
_COUNTY_FIRST = "昌阜玛呼沙乌托和博精"
_COUNTY_LAST = "宁丰安平源远康兴隆城"
_HEADERS = {
    ListKind.BASIC: ("序号", "事项类别", "事项名称"),
    ListKind.COORDINATED: ("序号", "事项类别", "事项名称", "对应上级部门", "上级部门职责", "乡镇配合职责"),
    ListKind.WITHDRAWN: ("序号", "事项类别", "事项名称", "承接部门及工作方式"),
}


@dataclass
class Corpus:
    files: list[Path]
    towns: list[str]
    items: int
    sources: dict[str, str] = field(default_factory=dict)  # synthetic dense text → real dense text


def generate(n: int, folder: Path, seed: int = 0) -> Corpus:
    """Write `n` townships' lists into `folder` (the real two included when n >= 2)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    real = [parse_file(p) for p in sorted(CORPUS_DIR.glob("*.txt"))]
    corpus = Corpus(files=[], towns=[], items=0)
    names = _names(n)
    for k in range(n):
        if k < len(real):  # the shipped files themselves
            path = folder / f"{k:04d}-{Path(real[k].source).name}"
            shutil.copy(real[k].source, path)
            doc, origin = real[k], list(real[k].items)
        else:
            county, town = names[k]
            doc, origin = _variant(real[k % len(real)], real[(k + 1) % len(real)], county, town, rng)
            path = folder / f"{k:04d}-{doc.town}.txt"
            path.write_text(_export(doc), encoding="utf-8")
        parsed = parse_file(path)
        if len(parsed.items) != len(origin):
            raise RuntimeError(f"{path}: wrote {len(origin)} items, parsed {len(parsed.items)}")
        corpus.sources.update((dense_text(a), dense_text(b)) for a, b in zip(parsed.items, origin))
        corpus.files.append(path)
        corpus.towns.append(doc.town)
        corpus.items += len(parsed.items)
    return corpus


def _names(n: int) -> list[tuple[str, str]]:
    towns = [a + m + b + "镇" for a in _TOWN_FIRST for m in _TOWN_MIDDLE for b in _TOWN_LAST]
    counties = [a + b + "县" for a in _COUNTY_FIRST for b in _COUNTY_LAST]
    if n > len(towns) or n // TOWNS_PER_COUNTY >= len(counties):
        raise ValueError(f"at most {len(towns)} synthetic townships")
    return [(counties[k // TOWNS_PER_COUNTY], towns[k]) for k in range(n)]


def _variant(
    base: Document, other: Document, county: str, town: str, rng: random.Random
) -> tuple[Document, list[DutyItem]]:
    """`base`'s lists for another township; returns the document and, per item, its real source."""
    places = [(base.county, county), (base.county[:-1], county[:-1]), (base.town, town), (base.town[:-1], town[:-1])]
    places += [
        (other.county, county),
        (other.county[:-1], county[:-1]),
        (other.town, town),
        (other.town[:-1], town[:-1]),
    ]
    items, sources = [], []
    for kind in ListKind:
        chosen = [i for i in base.items if i.list is kind and rng.random() > 0.05]
        borrowed = [i for i in other.items if i.list is kind and rng.random() < 0.05]
        for item in borrowed:
            chosen.insert(rng.randrange(len(chosen) + 1), item)
        chosen = _shuffle_within_categories(chosen, rng)
        for number, item in enumerate(chosen, 1):
            sources.append(item)
            items.append(_moved(item, town, county, number, places, reverse=rng.random() < 0.1))
    return Document("", town, county, PREFECTURE, items), sources


def _shuffle_within_categories(items: list[DutyItem], rng: random.Random) -> list[DutyItem]:
    order = list(dict.fromkeys(i.category for i in items))
    groups = {c: [i for i in items if i.category == c] for c in order}
    for group in groups.values():
        rng.shuffle(group)
    return [i for c in order for i in groups[c]]


def _moved(item: DutyItem, town: str, county: str, number: int, places, reverse: bool) -> DutyItem:
    def local(text: str) -> str:
        for old, new in places:
            text = text.replace(old, new)
        return text

    township = tuple(map(local, item.township_duties))
    return replace(
        item,
        town=town,
        county=county,
        prefecture=PREFECTURE,
        number=number,
        title=local(item.title),
        departments=tuple(map(local, item.departments)),
        department_duties=tuple(map(local, item.department_duties)),
        township_duties=township[::-1] if reverse else township,
        receivers=tuple(replace(r, department=local(r.department), handling=local(r.handling)) for r in item.receivers),
    )


def _export(doc: Document) -> str:
    """The text-export format the shipped lists come in."""
    lines = [f"新疆维吾尔自治区{doc.prefecture}", f"{doc.county}{doc.town}", "履职事项清单", ""]
    for kind in ListKind:
        lines += ["", f"{doc.prefecture}{doc.county}{doc.town}{kind.label}", "", "\t".join(_HEADERS[kind])]
        for item in (i for i in doc.items if i.list is kind):
            cells = [str(item.number), item.category, item.title]
            if kind is ListKind.COORDINATED:
                cells += [
                    "、".join(item.departments),
                    _paragraphs(item.department_duties),
                    _paragraphs(item.township_duties),
                ]
            elif kind is ListKind.WITHDRAWN:
                cells.append(
                    " ".join(f"{r.department}： {r.handling}" if r.department else r.handling for r in item.receivers)
                )
            lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _paragraphs(steps: tuple[str, ...]) -> str:
    return "".join(f"<p>{step}</p>" for step in steps)
