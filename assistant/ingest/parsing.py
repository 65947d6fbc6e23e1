"""Duty-list documents → typed items.

Parsing goes by structure, not by exact strings: a section starts at a title line naming a
list and continues through its header row (`序号 …`, repeated at page breaks) and its
numbered rows. Every format reader (text export, docx, xlsx, pdf) produces the same stream
of `Row`s, so all formats share this one parser.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest.readers import SUFFIXES, Limits, reader_for
from assistant.ingest.rows import ParseError, Row
from assistant.items import DutyItem, ListKind, Receiver

__all__ = ["Document", "ParseError", "Row", "parse_file", "parse_paths", "parse_rows"]

log = logging.getLogger(__name__)


@dataclass
class Document:
    """The items of one township's document, with the places named in its titles."""

    source: str
    town: str
    county: str
    prefecture: str
    items: list[DutyItem]
    warnings: list[str] = field(default_factory=list)

    def count(self, kind: ListKind) -> int:
        return sum(item.list is kind for item in self.items)


_KIND_WORDS = (
    (ListKind.COORDINATED, "配合"),
    (ListKind.WITHDRAWN, "收回"),
    (ListKind.BASIC, "基本"),
)
_TITLE_RE = re.compile(r"(基本|配合|收回).*(清单|事项单)")
_PLACE_RE = re.compile(
    r"^(?:.+?(?:自治区|省))?"
    r"(?P<prefecture>.+?(?:自治州|地区|盟|州|市))?"
    r"(?P<county>.+?(?:自治县|县|旗|市|区))"
    r"(?P<town>.+?(?:民族乡|镇|乡|街道|苏木))$"
)
_HEADER_FIRST = "序号"
_COLUMNS = {ListKind.BASIC: 3, ListKind.COORDINATED: 6, ListKind.WITHDRAWN: 4}


def parse_file(path: str | Path, limits: Limits | None = None) -> Document:
    """Parse one document, choosing the reader by file suffix; `limits` bound its content."""
    path = Path(path)
    if not path.is_file():
        raise ParseError(str(path), 0, "no such file")
    return parse_rows(reader_for(path, limits)(path), source=str(path))


def parse_rows(rows: Iterable[Row], source: str) -> Document:
    """Turn a document's rows into validated items."""
    places: list[tuple[str, str | int]] = []
    cover: list[str] = []
    sections: list[_Section] = []
    pending_title: tuple[str, str | int] | None = None
    warnings: list[str] = []

    for row in rows:
        cells = [c.strip() for c in row.cells]
        if not any(cells):
            continue
        first = cells[0]
        if first.replace(" ", "") == _HEADER_FIRST:
            cells = _trim(cells)
            if pending_title is not None or not sections:
                sections.append(_Section.start(cells, pending_title, source, row.where))
                pending_title = None
            else:
                sections[-1].check_header(cells, source, row.where)
            continue
        if first.isdigit() and sections and pending_title is None:
            if not first.isdecimal():  # '²' is a digit to Python, but no number
                raise ParseError(source, row.where, f"序号 {first!r} is not a number")
            sections[-1].rows.append((cells, row.where))
            continue
        cells = _trim(cells)
        text = "".join(cells) if len(cells) == 1 else None
        if text is None:
            continue  # table-of-contents lines and other tabular noise outside a table
        if _TITLE_RE.search(text):
            pending_title = (text, row.where)
            prefix = _place_prefix(text)
            if prefix:
                places.append((prefix, row.where))
        elif not sections and not cover_done(cover):
            cover.append(text)

    if not sections:
        raise ParseError(source, 1, "no duty-list table found (expected a header row starting with 序号)")
    town, county, prefecture = _places(places, cover, source)
    items: list[DutyItem] = []
    seen: dict[ListKind, str | int] = {}
    for section in sections:
        if section.kind in seen:
            raise ParseError(source, section.where, f"second {section.kind.label} (first at {seen[section.kind]})")
        seen[section.kind] = section.where
        items.extend(section.items(town, county, prefecture, source, warnings))
    for warning in warnings:
        log.info(warning)
    return Document(source, town, county, prefecture, items, warnings)


def cover_done(cover: list[str]) -> bool:
    """The cover block ends at the document's own name (…履职事项清单) or the table of contents."""
    return bool(cover) and ("履职事项清单" in cover[-1] or cover[-1].replace(" ", "") == "目录")


@dataclass
class _Section:
    kind: ListKind
    columns: int
    where: str | int
    rows: list[tuple[list[str], str | int]] = field(default_factory=list)

    @classmethod
    def start(cls, header: list[str], title: tuple[str, str | int] | None, source: str, where) -> _Section:
        kind = _kind_from_header(header) or (_kind_from_title(title[0]) if title else None)
        if kind is None:
            raise ParseError(source, where, "cannot tell which list this table is: " + "、".join(header))
        if len(header) != _COLUMNS[kind]:
            raise ParseError(source, where, f"{kind.label} header has {len(header)} columns, expected {_COLUMNS[kind]}")
        return cls(kind, len(header), where)

    def check_header(self, header: list[str], source: str, where) -> None:
        if len(header) != self.columns:
            raise ParseError(source, where, f"repeated header has {len(header)} columns, expected {self.columns}")

    def items(self, town: str, county: str, prefecture: str, source: str, warnings: list[str]) -> list[DutyItem]:
        items = []
        for expected, (cells, where) in enumerate(self.rows, 1):
            cells = _trim(cells, keep=self.columns)
            if len(cells) != self.columns:
                raise ParseError(
                    source, where, f"{self.kind.label} row has {len(cells)} columns, expected {self.columns}"
                )
            number = int(cells[0])
            if number != expected:
                raise ParseError(source, where, f"{self.kind.label} number {number} out of order, expected {expected}")
            category, title = clean_text(cells[1]), clean_text(cells[2])
            if not title:
                raise ParseError(source, where, f"{self.kind.label} item {number} has an empty 事项名称")
            if not category:
                raise ParseError(source, where, f"{self.kind.label} item {number} has an empty 事项类别")
            extra: dict = {}
            if self.kind is ListKind.COORDINATED:
                extra["departments"] = split_departments(cells[3])
                if not extra["departments"]:
                    raise ParseError(source, where, f"配合履职 item {number} names no 对应上级部门")
                for key, cell in (("department_duties", cells[4]), ("township_duties", cells[5])):
                    steps, dropped = dedupe(split_steps(cell))
                    extra[key] = steps
                    if dropped:
                        warnings.append(f"{source}:{where}: item {number} repeats a duty line; kept once: {dropped[0]}")
            elif self.kind is ListKind.WITHDRAWN:
                extra["receivers"] = split_receivers(cells[3])
            items.append(
                DutyItem(
                    town=town,
                    county=county,
                    prefecture=prefecture,
                    list=self.kind,
                    number=number,
                    category=category,
                    title=title,
                    source=source,
                    line=int(where) if str(where).isdigit() else 0,
                    **extra,
                )
            )
        if not items:
            raise ParseError(source, self.where, f"{self.kind.label} has no items")
        return items


def _trim(cells: list[str], keep: int = 1) -> list[str]:
    """Drop trailing empty cells (stray tabs), keeping at least `keep`."""
    cells = list(cells)
    while len(cells) > keep and not cells[-1]:
        cells.pop()
    return cells


def _kind_from_header(header: Sequence[str]) -> ListKind | None:
    joined = "".join(header)
    if "配合" in joined or "上级部门职责" in joined:
        return ListKind.COORDINATED
    if "承接" in joined:
        return ListKind.WITHDRAWN
    if len(header) == _COLUMNS[ListKind.BASIC]:
        return ListKind.BASIC
    return None


def _kind_from_title(title: str) -> ListKind | None:
    for kind, word in _KIND_WORDS:
        if word in title:
            return kind
    return None


def _place_prefix(title: str) -> str:
    """'昌吉州奇台县半截沟镇配合履职事项清单' → '昌吉州奇台县半截沟镇'."""
    match = re.match(r"^(.*?)(?:基本|配合|上级部门收回|收回)", re.sub(r"\s+", "", title))
    return match.group(1) if match else ""


def _places(titles: list[tuple[str, str | int]], cover: list[str], source: str) -> tuple[str, str, str]:
    """Town, county and prefecture from the cover and section titles, which must agree."""
    candidates: list[tuple[str, str | int]] = [("".join(cover).replace(" ", ""), 1)] if cover else []
    candidates += titles
    found = []
    for text, where in candidates:
        for end in range(len(text), 1, -1):  # cover lines may trail with a date or '履职事项清单'
            match = _PLACE_RE.match(text[:end])
            if match:
                found.append((match, where))
                break
    if not found:
        raise ParseError(source, 1, "cannot find the township and county in the document's title lines")
    town, county = found[0][0]["town"], found[0][0]["county"]
    for match, where in found[1:]:
        if (match["town"], match["county"]) != (town, county):
            raise ParseError(
                source, where, f"title names {match['county']}{match['town']}, but the document is {county}{town}"
            )
    prefectures = [m["prefecture"] for m, _ in found if m["prefecture"]]
    return town, county, max(prefectures, key=len, default="")


_TAG_BREAK = re.compile(r"</?(?:p|br|li|ol|ul|div|tr)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\r\u3000\xa0]+")


def clean_text(cell: str) -> str:
    """Plain single-line text: tags dropped, entities decoded, spaces folded."""
    text = html.unescape(_TAG.sub(" ", cell))
    return _SPACE.sub(" ", text).strip()


def split_departments(cell: str) -> tuple[str, ...]:
    names = re.split(r"[、，,；;/\s]+", clean_text(cell))
    return tuple(name for name in names if name)


_STEP_END = "；;，,。. \n"
_ORDINALS = re.compile(r"(?:^|(?<=[；;。.，,\s]))\s*(?:[（(](\d{1,2})[）)]|(\d{1,2})\s*[.、．)）](?!\d))")
_DEPARTMENT = r"[^\s\d：:。；;，,、]{2,25}?(?:局|部|委|办|会|联|队|院|中心|政府|室)"
_GROUP_HEADING = re.compile(
    r"(?:^|(?<=[\n。；;]))[ ]*(?:"
    r"[一二三四五六七八九十]+、(?P<section>[^\n\d；;。：:]{1,30}?)(?=[ \n])"
    r"|(?P<department>" + _DEPARTMENT + r")(?:[ ]*[：:]|(?=[ \n]))"
    r")"
)


def split_steps(cell: str) -> tuple[str, ...]:
    """A duty cell → ordered steps, whatever the numbering style.

    Handles `1.…；2.…` inline numbering, one `<p>` per step, `<ol>` blocks whose entries are
    separated by '；', and group headings that apply to the steps below them: a department
    ('县应急管理局：', '县自然资源局 1.…') or a section ('一、秸秆综合利用 1.…'). Each step
    under a heading is prefixed with it ('县水利局：负责水工程监管').
    """
    text = "\n".join(_lines(cell))
    headings = list(_GROUP_HEADING.finditer(text))
    groups = [("", text[: headings[0].start()] if headings else text)]
    for match, following in zip(headings, headings[1:] + [None]):
        name = match.group("section") or match.group("department")
        groups.append((name.strip() + "：", text[match.end() : following.start() if following else len(text)]))
    steps: list[str] = []
    for heading, body in groups:
        lead, parts = _split_ordinals(body)
        if not parts:
            parts = body.split("\n")
        elif lead:
            parts.insert(0, lead)
        steps.extend(heading + p.strip(_STEP_END) for p in parts if p.strip(_STEP_END))
    return tuple(steps)


def _lines(cell: str) -> list[str]:
    """Block tags become line breaks; inside <ol>/<ul>, so does every '；' between entries."""
    lines: list[str] = []
    in_list = False
    pos = 0
    for match in [*_TAG_BREAK.finditer(cell), None]:
        piece = clean_text(cell[pos : match.start() if match else len(cell)])
        lines.extend(re.split(r"(?<=[；;])", piece) if in_list else [piece])
        if match is None:
            break
        tag = match.group(0).lower()
        if tag.startswith(("<ol", "<ul")):
            in_list = True
        elif tag.startswith(("</ol", "</ul", "<p")):
            in_list = False
        pos = match.end()
    return [line.strip() for line in lines if line.strip()]


def _split_ordinals(text: str) -> tuple[str, list[str]]:
    """'lead 1.a；2.b' → ('lead', ['a', 'b']), accepting only markers that count up from 1.

    Without such markers the whole text is the lead; a lone '1.' inside a sentence is not
    numbering.
    """
    cuts: list[tuple[int, int]] = []
    for match in _ORDINALS.finditer(text):
        if int(match.group(1) or match.group(2)) == len(cuts) + 1:
            cuts.append((match.start(), match.end()))
    if not cuts or (len(cuts) == 1 and text[: cuts[0][0]].strip()):
        return text.strip(), []
    ends = [start for start, _ in cuts[1:]] + [len(text)]
    parts = [text[end:next_start].strip() for (_, end), next_start in zip(cuts, ends)]
    return text[: cuts[0][0]].strip(), [p for p in parts if p]


def dedupe(steps: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    seen: set[str] = set()
    kept: list[str] = []
    dropped: list[str] = []
    for step in steps:
        (dropped if step in seen else kept).append(step)
        seen.add(step)
    return tuple(kept), dropped


_RECEIVER = re.compile(
    r"(?:^|(?<=[。；;\s]))\s*([^\s：:。；;，,]{2,40}?"
    r"(?:局|委员会|委|部|办|办公室|队|院|中心|会|联|所|站|政府|人大|政协|室|厅|处|科|分局))\s*[:：]"
)


def split_receivers(cell: str) -> tuple[Receiver, ...]:
    """'吉木萨尔县民政局： 依据…' → Receiver(department, handling); one per department heading."""
    text = clean_text(_TAG_BREAK.sub(" ", cell).replace("\n", " "))
    matches = list(_RECEIVER.finditer(text))
    if not matches:
        return (Receiver(department="", handling=text),) if text else ()
    receivers = []
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following else len(text)
        handling = text[match.end() : end].strip()
        receivers.append(Receiver(department=match.group(1), handling=handling))
    return tuple(receivers)


def parse_paths(paths: Iterable[str | Path], limits: Limits | None = None) -> tuple[list[Document], list[ParseError]]:
    """Parse every document under the given files and folders; failures are collected, not raised.

    One bad or unreadable file is reported and the others are still parsed.
    """
    documents: list[Document] = []
    errors: list[ParseError] = []
    for path in expand_paths(paths, errors):
        try:
            documents.append(parse_file(path, limits))
        except ParseError as exc:
            errors.append(exc)
        except OSError as exc:  # e.g. permission denied
            errors.append(ParseError(str(path), 0, f"cannot read the file ({exc.strerror or exc})"))
        except Exception as exc:  # a reader bug must cost this file only
            log.exception("parsing %s failed", path)
            errors.append(ParseError(str(path), 0, f"cannot parse the file ({type(exc).__name__}: {exc})"))
    return documents, errors


def expand_paths(paths: Iterable[str | Path], errors: list[ParseError] | None = None) -> list[Path]:
    """Document files under the given files and folders; a folder that cannot be listed is
    reported into `errors` (or raised), never skipped silently."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        unreadable: list[OSError] = []
        inside = [
            Path(folder) / name for folder, _, names in os.walk(path, onerror=unreadable.append) for name in names
        ]
        found.extend(sorted(p for p in inside if p.suffix.lower() in SUFFIXES and p.is_file()))
        for exc in unreadable:
            error = ParseError(
                str(exc.filename or path),
                0,
                f"cannot read the folder ({exc.strerror or exc}); its documents were not imported",
            )
            if errors is None:
                raise error
            errors.append(error)
    return found
