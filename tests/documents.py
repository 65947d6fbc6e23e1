"""Write a duty list as the Word, Excel and PDF files townships publish, for reader tests.

The source is the text export's rows. Cells show what a printed list shows: the export's
<p>/<ol> markup becomes separate lines, repeated page-break headers become one repeating
header row, and a category shared by consecutive items becomes one merged cell.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from assistant.ingest.parsing import _lines
from assistant.ingest.readers import read_text


@dataclass
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Layout:
    """A document as blocks: cover lines, then (title, table) per list."""

    cover: list[str]
    tables: list[Table]


def layout(path: Path) -> Layout:
    cover: list[str] = []
    tables: list[Table] = []
    title = ""
    for row in read_text(path):
        cells = [c.strip() for c in row.cells]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if cells[0].replace(" ", "") == "序号":
            if title:
                tables.append(Table(title, tuple(cells)))
                title = ""
        elif cells[0].isdigit() and tables:
            tables[-1].rows.append(tuple(shown(c) for c in cells))
        elif (
            len(cells) == 1
            and tables
            or len(cells) == 1
            and "清单" in cells[0]
            and "县" in cells[0]
            and any(w in cells[0] for w in ("基本", "配合", "收回"))
        ):
            title = cells[0]
        elif not tables and not title:
            cover.append("  ".join(cells))
    return Layout(cover, tables)


def shown(cell: str) -> str:
    """A cell as printed: one line per paragraph or list entry."""
    return "\n".join(_lines(cell))


def merged_runs(rows: list[tuple[str, ...]], column: int, longest: int = 0) -> list[tuple[int, int]]:
    """(first, last) row indexes of runs sharing one value in `column`, at most `longest` rows each."""
    runs, start = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][column] != rows[start][column] or i - start == longest:
            runs.append((start, i - 1))
            start = i
    return runs


def write_text(doc: Layout, path: Path) -> Path:
    """The text export: tab-separated cells, a cell's lines joined by <p>."""
    lines = list(doc.cover)
    for table in doc.tables:
        lines += [table.title, "\t".join(table.header)]
        lines += ["\t".join(cell.replace("\n", "<p>") for cell in row) for row in table.rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- Word ---------------------------------------------------------------------------------------


def write_docx(doc: Layout, path: Path, *, title_in_table: bool = True) -> Path:
    """Titles as paragraphs (the last list's title as a merged first table row), categories merged."""
    import docx
    from docx.shared import Pt

    document = docx.Document()
    document.styles["Normal"].font.size = Pt(9)
    for line in doc.cover:
        document.add_paragraph(line)
    for index, table in enumerate(doc.tables):
        inside = title_in_table and index == len(doc.tables) - 1
        if not inside:
            document.add_paragraph(table.title)
        offset = 1 if inside else 0
        grid = document.add_table(rows=offset + 1 + len(table.rows), cols=len(table.header))
        grid.style = "Table Grid"
        cells = [row.cells for row in grid.rows]  # python-docx recomputes these on every access
        if inside:
            cells[0][0].merge(cells[0][-1]).text = table.title
        for c, text in enumerate(table.header):
            cells[offset][c].text = text
        for r, row in enumerate(table.rows):
            for c, text in enumerate(row):
                if c != 1:
                    _fill(cells[offset + 1 + r][c], text)
        for first, last in merged_runs(table.rows, 1):
            top = cells[offset + 1 + first][1]
            top.text = table.rows[first][1]
            if last > first:
                top.merge(cells[offset + 1 + last][1])
    document.save(path)
    return path


def _fill(cell, text: str) -> None:
    lines = text.split("\n")
    cell.text = lines[0]
    for line in lines[1:]:
        cell.add_paragraph(line)


# -- Excel --------------------------------------------------------------------------------------


def write_xlsx(doc: Layout, path: Path) -> Path:
    """A cover sheet, then one sheet per list: a merged title row, a blank row, the table from column B."""
    import openpyxl

    book = openpyxl.Workbook()
    cover = book.active
    cover.title = "封面"
    for r, line in enumerate(doc.cover, 1):
        cover.cell(r, 1, line)
    for index, table in enumerate(doc.tables, 1):
        sheet = book.create_sheet(f"清单{index}")
        width = len(table.header)
        sheet.cell(1, 2, table.title)
        sheet.merge_cells(start_row=1, start_column=2, end_row=1, end_column=1 + width)
        for c, text in enumerate(table.header, 2):
            sheet.cell(3, c, text)
        for r, cells in enumerate(table.rows, 4):
            for c, text in enumerate(cells, 2):
                sheet.cell(r, c, int(text) if c == 2 else text)
        for first, last in merged_runs(table.rows, 1):
            if last > first:
                for r in range(first + 5, last + 5):
                    sheet.cell(r, 3).value = None
                sheet.merge_cells(start_row=first + 4, start_column=3, end_row=last + 4, end_column=3)
    book.save(path)
    return path


# -- PDF ----------------------------------------------------------------------------------------


def cjk_font() -> Path | None:
    """An installed font with Chinese glyphs: Debian's fonts-wqy-microhei (`make install-test`)
    if present, since line breaks, and so the test's PDFs, depend on the font's metrics."""
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.split(":")[0].strip() for line in listing.splitlines() if line.strip())
    files.sort(key=lambda f: "wqy-microhei" not in f)
    return Path(files[0]) if files else None


COLUMN_WIDTHS = {3: (12, 35, 143), 4: (12, 30, 60, 88), 6: (10, 22, 32, 28, 49, 49)}


def write_pdf(doc: Layout, path: Path, font: Path) -> Path:
    """A4, ruled tables whose header row repeats on every page, as Word's PDF export prints them.

    In the basic list, a category shared by consecutive items is one cell spanning up to
    three rows (longer rows would not fit a page).
    """
    from fpdf import FPDF
    from fpdf.enums import WrapMode

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_font("cjk", fname=str(font))
    pdf.add_font("cjk", style="B", fname=str(font))
    pdf.set_font("cjk", size=8)
    pdf.add_page()
    for line in doc.cover:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT", align="C")
    for table in doc.tables:
        pdf.add_page()
        pdf.set_font("cjk", size=10)
        pdf.multi_cell(0, 7, table.title, new_x="LMARGIN", new_y="NEXT", align="C")
        pdf.set_font("cjk", size=8)
        widths = COLUMN_WIDTHS[len(table.header)]
        with pdf.table(
            col_widths=widths, repeat_headings=1, line_height=4.2, text_align="LEFT", wrapmode=WrapMode.WORD
        ) as grid:
            grid.row(table.header)
            runs = merged_runs(table.rows, 1, longest=3 if len(table.header) == 3 else 1)
            spans = {first: last - first + 1 for first, last in runs}
            for r, cells in enumerate(table.rows):
                row = grid.row()
                for c, text in enumerate(cells):
                    if c != 1:
                        row.cell(text)
                    elif r in spans:
                        row.cell(text, rowspan=spans[r])
    pdf.output(str(path))
    return path


NEW_DUTY = "每月组织一次私屠滥宰专项巡查"
NEW_ITEM = "负责本镇数据管理试点工作，按时更新履职事项清单"


def changed_ergong(folder: Path) -> Path:
    """A newer 二工镇 list with exactly three changes: 配合22's township duties gain a step,
    配合102 (the last) moves to the end of 收回 (a county department took it back), and
    基本110 is added at the end. Last items, so nothing is renumbered."""
    from assistant.settings import CORPUS_DIR

    lines = (CORPUS_DIR / "二工镇.txt").read_text(encoding="utf-8").splitlines()
    rows = [(i, line.split("\t")) for i, line in enumerate(lines)]
    basic_last = next(i for i, cells in rows if len(cells) == 3 and cells[0] == "109")
    slaughter = next(i for i, cells in rows if len(cells) == 6 and cells[0] == "22")
    moved = next(i for i, cells in rows if len(cells) == 6 and cells[0] == "102")
    withdrawn_last = max(i for i, cells in rows if len(cells) == 4 and cells[0].isdigit())
    cells = lines[slaughter].split("\t")
    cells[5] += f"；4.{NEW_DUTY}"
    lines[slaughter] = "\t".join(cells)
    _, category, title, departments, *_ = lines[moved].split("\t")
    number = int(lines[withdrawn_last].split("\t")[0]) + 1
    taken_back = f"{number}\t{category}\t{title}\t{departments.split('、')[0]}：由县级部门直接负责，乡镇不再承担。"
    lines.insert(withdrawn_last + 1, taken_back)
    del lines[moved]
    lines.insert(basic_last + 1, f"110\t综合政务\t{NEW_ITEM}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "二工镇.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
