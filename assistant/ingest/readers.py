"""Format readers: each turns a file into the `Row` stream that `parsing.parse_rows` reads.

Every format yields what a reader of the printed list sees, so all formats give the same
records: text outside tables becomes one-cell rows (cover, titles), table rows become rows
of cells. A cell merged across columns is one cell; a cell merged down several rows (a
category spanning its items) repeats in each row. A cell's paragraphs stay separate lines,
which the parser reads like the text export's <p> tags. `where` names the place in the
file's own terms: "table 2 row 5", "Sheet1!A12", "page 3 row 4".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path

from assistant.ingest.rows import ParseError, Row

Reader = Callable[..., list[Row]]  # (path, limits) -> rows


@dataclass(frozen=True)
class Limits:
    """How much content one document may hold, whatever its size on disk.

    A small compressed file can unpack to millions of cells or paragraphs (a 5 KB workbook
    with one cell at XFD1048576 once grew an ingest to 24 GB), so every reader counts what
    it reads and stops at the first limit. A real list has < 2,000 rows, < 20 columns and
    < 2 MB of text; the defaults (settings `max_*`) leave wide room.
    """

    file_mb: float
    unpacked_mb: float
    rows: int
    columns: int
    cells: int
    paragraphs: int
    pages: int
    chars: int

    @classmethod
    def from_settings(cls, settings=None) -> Limits:
        """From a Settings object; without one, the settings' defaults."""
        from assistant.settings import Settings

        def value(name: str):
            return getattr(settings, name) if settings is not None else Settings.model_fields[name].default

        return cls(*(value(f"max_{name}") for name in cls.__dataclass_fields__))


class _Count:
    """Running totals for one document; raises a ParseError naming the limit and its setting."""

    def __init__(self, path: Path, limits: Limits):
        self.path, self.limits = path, limits
        self.cells = self.chars = 0

    def over(self, where, what: str, value: float, limit: float, setting: str) -> None:
        if value > limit:
            raise ParseError(
                str(self.path),
                where,
                f"more than {limit:,} {what}: not a duty list, or not one this reader accepts "
                f"(limit: setting {setting}, DUTY_{setting.upper()})",
            )

    def add(self, where, cells: int, chars: int) -> None:
        self.cells += cells
        self.chars += chars
        self.over(where, "cells", self.cells, self.limits.cells, "max_cells")
        self.over(where, "characters of text", self.chars, self.limits.chars, "max_chars")


def _check_unpacked(path: Path, limits: Limits) -> None:
    """A .docx / .xlsx is a zip: refuse one that unpacks to more than the limit before parsing."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # the library reports the damage in its own words
    _Count(path, limits).over(0, "MB unpacked", round(unpacked / 2**20, 1), limits.unpacked_mb, "max_unpacked_mb")


_HEADER = "序号"


def _is_header(cell: str) -> bool:
    return re.sub(r"\s+", "", cell) == _HEADER


def _open(path: Path, kind: str, opener: Callable):
    """Open with a third-party library; whatever it raises on a damaged file becomes a ParseError."""
    try:
        return opener(path)
    except ParseError:
        raise
    except Exception as exc:  # the libraries raise many unrelated types on bad input
        raise ParseError(str(path), 0, f"cannot read this file as {kind} ({type(exc).__name__}: {exc})") from None


# -- the text export -------------------------------------------------------------------------


def read_text(path: Path, limits: Limits | None = None) -> list[Row]:
    """The text export: one row per line, cells separated by tabs."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ParseError(str(path), line, "not UTF-8 text (save the file as UTF-8)") from exc
    # Not splitlines(): U+2028 and friends inside a cell are text, not line breaks.
    lines = _LINE_BREAK.split(text.removesuffix("\n"))
    if limits is not None:
        if len(text) > limits.chars:
            raise ParseError(str(path), 0, f"more than {limits.chars:,} characters of text (limit: setting max_chars)")
        if len(lines) > limits.rows:
            raise ParseError(str(path), limits.rows + 1, f"more than {limits.rows:,} lines (limit: setting max_rows)")
    return [Row(tuple(line.split("\t")), number) for number, line in enumerate(lines, 1)]


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


# -- Word -------------------------------------------------------------------------------------


def read_docx(path: Path, limits: Limits | None = None) -> list[Row]:
    """Paragraphs and table rows in document order."""
    import docx
    from docx.table import Table

    limits = limits or Limits.from_settings()
    _check_unpacked(path, limits)
    _scan_docx(path, limits)
    document = _open(path, "a Word .docx document", docx.Document)
    rows: list[Row] = []
    tables = paragraphs = 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            tables += 1
            for number, row in enumerate(block.rows, 1):
                rows.append(Row(_distinct_cells(row.cells), f"table {tables} row {number}"))
        else:
            paragraphs += 1
            if block.text.strip():
                rows.append(Row((block.text,), f"paragraph {paragraphs}"))
    return rows


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _scan_docx(path: Path, limits: Limits) -> None:
    """Count paragraphs, table rows, cells, text and XML elements in a streaming pass, before
    python-docx builds the whole tree in memory (4 million empty paragraphs fit in 430 KB)."""
    import zipfile

    from lxml import etree

    try:
        archive = zipfile.ZipFile(path)
        source = archive.open("word/document.xml")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return  # python-docx reports the damage in its own words
    count = _Count(path, limits)
    paragraphs = rows = elements = 0
    try:
        with archive, source:
            for _, element in etree.iterparse(source, events=("end",), resolve_entities=False, no_network=True):
                elements += 1
                tag = element.tag
                if tag == _W + "p":
                    paragraphs += 1
                    count.over(f"paragraph {paragraphs}", "paragraphs", paragraphs, limits.paragraphs, "max_paragraphs")
                elif tag == _W + "tr":
                    rows += 1
                    count.over(f"table row {rows}", "table rows", rows, limits.rows, "max_rows")
                elif tag == _W + "tc":
                    count.add(f"table row {rows + 1}", 1, 0)
                elif tag == _W + "t" and element.text:
                    count.add(f"paragraph {paragraphs + 1}", 0, len(element.text))
                if elements > 10 * limits.cells:
                    count.over(
                        f"paragraph {paragraphs}",
                        "XML elements (10 per allowed cell)",
                        elements,
                        10 * limits.cells,
                        "max_cells",
                    )
                if tag in (_W + "p", _W + "tbl"):
                    element.clear(keep_tail=False)
                    while element.getprevious() is not None:  # free what has been counted
                        del element.getparent()[0]
    except etree.XMLSyntaxError:
        return  # python-docx reports the damage in its own words


def _distinct_cells(cells: Sequence) -> tuple[str, ...]:
    """python-docx repeats a cell once per grid column it spans; keep it once.

    A cell continuing a vertical merge already reads as the merge's first cell.
    """
    kept: list = []
    for cell in cells:
        if not kept or cell._tc is not kept[-1]._tc:
            kept.append(cell)
    return tuple(cell.text for cell in kept)


# -- Excel ------------------------------------------------------------------------------------


def read_xlsx(path: Path, limits: Limits | None = None) -> list[Row]:
    """Every sheet's rows; within a table, the cells under its header row (序号 …).

    Read in openpyxl's streaming mode, counting as it goes: the normal mode materialises
    every cell of the sheet's extent (and of every merged range) before anything can be
    checked.
    """
    import openpyxl

    limits = limits or Limits.from_settings()
    _check_unpacked(path, limits)
    book = _open(path, "an Excel .xlsx workbook", lambda p: openpyxl.load_workbook(p, read_only=True, data_only=True))
    count = _Count(path, limits)
    try:
        sheets = _open(
            path, "an Excel .xlsx workbook", lambda _: [_read_sheet(book, s, count) for s in book.worksheets]
        )
    finally:
        book.close()
    return [row for title, values, merges in sheets for row in _sheet_rows(title, values, merges)]


def _read_sheet(book, sheet, count: _Count) -> tuple[str, list[list[str]], list]:
    """A sheet's values as a dense grid and its merged ranges, within the limits."""
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet._reader import WorkSheetParser
    from openpyxl.worksheet.cell_range import CellRange

    limits = count.limits
    declared = f"{sheet.title}!{get_column_letter(sheet.max_column or 1)}{sheet.max_row or 1}"
    count.over(declared, "rows (declared sheet dimension)", sheet.max_row or 0, limits.rows, "max_rows")
    count.over(declared, "columns (declared sheet dimension)", sheet.max_column or 0, limits.columns, "max_columns")
    cells: dict[tuple[int, int], str] = {}
    height = width = 0
    with sheet._get_source() as source:  # the streaming parser, which also keeps the merged ranges
        parser = WorkSheetParser(
            source,
            sheet._shared_strings,
            data_only=True,
            epoch=book.epoch,
            date_formats=book._date_formats,
            timedelta_formats=book._timedelta_formats,
        )
        for row_number, row in parser.parse():
            count.over(f"{sheet.title}!A{row_number}", "rows", row_number, limits.rows, "max_rows")
            for cell in row:
                column = cell["column"]
                where = f"{sheet.title}!{get_column_letter(column)}{row_number}"
                count.over(where, "columns", column, limits.columns, "max_columns")
                text = _excel_text(cell["value"])
                count.add(where, 1, len(text))
                if text:
                    cells[row_number - 1, column - 1] = text
                    height, width = max(height, row_number), max(width, column)
        merges = [CellRange(m.ref) for m in (parser.merged_cells.mergeCell if parser.merged_cells else [])]
    count.add(f"{sheet.title}!A1", len(merges), 0)
    values = [[cells.get((r, c), "") for c in range(width)] for r in range(height)]
    return sheet.title, values, merges


def _sheet_rows(title: str, values: list[list[str]], merges: Sequence) -> Iterator[Row]:
    from openpyxl.utils import get_column_letter

    covered: set[tuple[int, int]] = set()  # (row, column), 0-based, inside a merge right of its first column
    for merged in merges:
        if merged.min_row > len(values) or merged.min_col > len(values[0]):
            continue  # a formatted but empty range beyond the data
        top = values[merged.min_row - 1][merged.min_col - 1]
        for r in range(merged.min_row - 1, min(merged.max_row, len(values))):
            for c in range(merged.min_col - 1, min(merged.max_col, len(values[r]))):
                if c > merged.min_col - 1:
                    covered.add((r, c))
                else:
                    values[r][c] = top
    span: tuple[int, int] | None = None  # columns of the current table, from its header row
    for r, row in enumerate(values):
        cells = [(c, text) for c, text in enumerate(row) if (r, c) not in covered]
        filled = [(c, text) for c, text in cells if text.strip()]
        if not filled:
            continue
        first_column = filled[0][0]
        if _is_header(filled[0][1]):
            span = (first_column, filled[-1][0])
        if len(filled) == 1 and not _is_header(filled[0][1]) and not filled[0][1].strip().isdecimal():
            kept = [filled[0][1]]  # a title or cover line, wherever it stands
        elif span is not None:
            kept = [text for c, text in cells if span[0] <= c <= span[1]]
            first_column = span[0]
        else:
            kept = [text for _, text in filled]
        yield Row(tuple(kept), f"{title}!{get_column_letter(first_column + 1)}{r + 1}")


def _excel_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# -- PDF --------------------------------------------------------------------------------------


def read_pdf(path: Path, limits: Limits | None = None) -> list[Row]:
    """Ruled tables (pdfplumber) and the text lines around them, page by page, top to bottom.

    A table repeats its header row on every page (the parser checks it); a row broken across
    a page break is joined back onto the row it continues.
    """
    import pdfplumber

    limits = limits or Limits.from_settings()
    count = _Count(path, limits)
    pdf = _open(path, "a PDF", pdfplumber.open)
    rows: list[Row] = []
    chars = 0
    try:
        pages = _open(path, "a PDF", lambda _: _pages(pdf, count))
        if not pages:
            raise ParseError(str(path), 0, "the PDF has no pages")
        for number, page in enumerate(pages, 1):
            try:
                chars += len(page.chars)
                count.add(f"page {number}", 0, len(page.chars))
                rows.extend(_page_rows(page, number))
                count.over(f"page {number}", "rows", len(rows), limits.rows, "max_rows")
            except ParseError:
                raise
            except Exception as exc:
                raise ParseError(
                    str(path), f"page {number}", f"cannot read this page ({type(exc).__name__}: {exc})"
                ) from None
    finally:
        _close(pdf)
    if chars == 0:
        raise ParseError(
            str(path), "page 1", "the PDF has no text layer (a scan?); export it from Word/WPS as PDF, or OCR it"
        )
    return _join_continuations(rows)


def _pages(pdf, count: _Count) -> list:
    """The pages, counted from the page tree before any is laid out."""
    from pdfminer.pdfpage import PDFPage

    for total, _ in enumerate(PDFPage.create_pages(pdf.doc), 1):
        count.over(f"page {total}", "pages", total, count.limits.pages, "max_pages")
    return pdf.pages


def _close(pdf) -> None:
    """pdfplumber closes page by page, which fails on the damaged file being reported."""
    try:
        pdf.close()
    except Exception:
        pdf.stream.close()


@dataclass(frozen=True)
class _Line:
    text: str  # as printed, spaces at either end kept: a wrap may fall on one
    top: float
    x0: float  # left edge of the first visible character
    x1: float  # right edge of the last visible character
    first_width: float  # width of the first visible character
    word_width: float  # width up to the first space: what a line breaker moves as a unit
    space_width: float  # a generous space (half an em)

    @property
    def starts_latin(self) -> bool:
        return self.text.lstrip()[:1].isascii()


def _page_rows(page, number: int) -> list[Row]:
    tables = page.find_tables()
    placed: list[tuple[float, Row]] = []
    row_number = 0
    for table in sorted(tables, key=lambda t: t.bbox[1]):
        for top, cells in _table_cells(page, table):
            row_number += 1
            placed.append((top, Row(cells, f"page {number} row {row_number}")))
    outside = [c for c in page.chars if not any(_inside(c, t.bbox) for t in tables)]
    for line_number, line in enumerate(_lines(outside), 1):
        if line.text.strip():
            placed.append((line.top, Row((line.text.strip(),), f"page {number} line {line_number}")))
    placed.sort(key=lambda p: p[0])
    return [row for _, row in placed]


def _table_cells(page, table) -> Iterator[tuple[float, tuple[str, ...]]]:
    """(top, cells) per table row, merged cells undone."""
    chars = [c for c in page.chars if _inside(c, table.bbox)]
    rows = table.rows
    lefts = sorted({bbox[0] for row in rows for bbox in row.cells if bbox is not None})
    above: list[str | None] = []
    for row in rows:
        texts: list[str | None] = []
        for column, bbox in enumerate(row.cells):
            if bbox is not None:
                texts.append(_pdf_cell_text([c for c in chars if _inside(c, bbox)], bbox))
            elif column < len(lefts) and any(b is not None and b[0] < lefts[column] < b[2] for b in row.cells):
                texts.append(None)  # covered by a cell merged across columns: drop
            else:
                texts.append(above[column] if column < len(above) and above[column] is not None else "")
        above = texts
        yield row.bbox[1], tuple(t for t in texts if t is not None)


def _inside(char: dict, bbox: tuple) -> bool:
    x = (char["x0"] + char["x1"]) / 2
    y = (char["top"] + char["bottom"]) / 2
    return bbox[0] <= x < bbox[2] and bbox[1] <= y < bbox[3]


def _lines(chars: Iterable[dict]) -> list[_Line]:
    """Characters grouped into lines by their vertical position, left to right."""
    groups: list[list[dict]] = []
    for char in sorted(chars, key=lambda c: (round(c["top"]), c["x0"])):
        if groups and abs(groups[-1][0]["top"] - char["top"]) <= 2:
            groups[-1].append(char)
        else:
            groups.append([char])
    lines = []
    for group in groups:
        group.sort(key=lambda c: c["x0"])
        visible = [c for c in group if c["text"].strip()]
        if not visible:
            continue
        first = visible[0]
        word = _first_word(group[group.index(first) :])
        lines.append(
            _Line(
                text="".join(c["text"] for c in group),
                top=first["top"],
                x0=first["x0"],
                x1=visible[-1]["x1"],
                first_width=first["x1"] - first["x0"],
                word_width=word["x1"] - first["x0"],
                space_width=first.get("size", 0.0) / 2,
            )
        )
    return lines


def _first_word(chars: list[dict]) -> dict:
    """The last character before the first space (or the line's last character)."""
    last = chars[0]
    for char in chars:
        if not char["text"].strip():
            break
        last = char
    return last


_TOLERANCE = 0.5  # points
_ORDINAL = re.compile(r"\s*(?:[（(]\d{1,2}[）)]|\d{1,2}\s*[.、．)）](?!\d))")


def _pdf_cell_text(chars: list[dict], bbox: tuple) -> str:
    """Rejoin a cell's lines, telling wrapped lines from the author's line breaks.

    Word and WPS lay Chinese out by filling each line and breaking between any two
    characters, moving only a Latin word as a whole. So a line ends short of the cell's
    right edge either because the next line starts with a Latin word that did not fit
    (joined with a space), or because the author started a new paragraph (kept as a line
    break). A full line just wrapped and joins directly, except before a step number
    ('2.'), which always follows a separator.
    """
    lines = _lines(chars)
    if not lines:
        return ""
    padding = max(min(line.x0 for line in lines) - bbox[0], 0.0)
    right = bbox[2] - padding
    text = lines[0].text
    for previous, line in zip(lines, lines[1:]):
        gap = right - previous.x1
        if gap < line.first_width + _TOLERANCE:
            text += " " + line.text if _ORDINAL.match(line.text) else line.text
        elif line.starts_latin and gap < line.space_width + line.word_width + _TOLERANCE:
            text = text.rstrip() + " " + line.text.lstrip()
        else:
            text = text.rstrip() + "\n" + line.text.lstrip()
    return text.strip()


def _join_continuations(rows: list[Row]) -> list[Row]:
    """A row with an empty 序号 after a page break continues the last numbered row before it
    (past the repeated header row and any running page header)."""
    joined: list[Row] = []
    last_data: int | None = None
    for row in rows:
        cells = row.cells
        if (
            last_data is not None
            and len(cells) > 1
            and not cells[0].strip()
            and len(cells) == len(joined[last_data].cells)
        ):
            previous = joined[last_data]
            joined[last_data] = Row(tuple(a + b for a, b in zip(previous.cells, cells)), previous.where)
            continue
        joined.append(row)
        if len(cells) > 1 and cells[0].strip().isdecimal():
            last_data = len(joined) - 1
    return joined


# -- registry ---------------------------------------------------------------------------------

READERS: dict[str, Reader] = {
    ".txt": read_text,
    ".tsv": read_text,
    ".docx": read_docx,
    ".xlsx": read_xlsx,
    ".xlsm": read_xlsx,
    ".pdf": read_pdf,
}
SUFFIXES = frozenset(READERS)
_CONVERT = {".doc": ".docx", ".wps": ".docx", ".xls": ".xlsx", ".et": ".xlsx"}


MAX_FILE_BYTES = 50 * 2**20
"""Published lists are a few MB; a larger file is something else, and reading it whole could
exhaust memory (the default of setting max_file_mb)."""


def reader_for(path: Path, limits: Limits | None = None) -> Reader:
    """The reader for the file's type, refusing empty and oversized files up front."""
    suffix = path.suffix.lower()
    if suffix in READERS:
        return partial(_checked, READERS[suffix], limits=limits or Limits.from_settings())
    if suffix in _CONVERT:
        raise ParseError(
            str(path), 0, f"unsupported file type {suffix} (an old binary format); save it as {_CONVERT[suffix]} first"
        )
    raise ParseError(
        str(path), 0, f"unsupported file type {suffix or '(none)'}; expected one of " + ", ".join(sorted(SUFFIXES))
    )


def _checked(reader: Reader, path: Path, *, limits: Limits) -> list[Row]:
    size = path.stat().st_size
    if size == 0:
        raise ParseError(str(path), 0, "the file is empty")
    if size > limits.file_mb * 2**20:
        raise ParseError(
            str(path),
            0,
            f"the file is {size / 2**20:.0f} MB, larger than any duty list "
            f"(limit {limits.file_mb:g} MB: setting max_file_mb)",
        )
    rows = reader(path, limits)
    # Whatever a reader did not count itself, the whole document is bounded here.
    count = _Count(path, limits)
    count.over(0, "rows", len(rows), limits.rows, "max_rows")
    count.over(0, "cells", sum(len(row.cells) for row in rows), limits.cells, "max_cells")
    return rows
