"""Word, Excel and PDF files of the shipped lists parse to exactly the text export's records."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from documents import Layout, Table, cjk_font, layout, write_docx, write_pdf, write_xlsx
from typer.testing import CliRunner

from assistant.index import ingest
from assistant.ingest.parsing import ParseError, parse_file, parse_paths
from assistant.settings import CORPUS_DIR, Settings

pytestmark = pytest.mark.slow  # real documents, models or processes: not in the fast tier

TOWNS = sorted(p.stem for p in CORPUS_DIR.glob("*.txt"))
FONT = cjk_font()
needs_font = pytest.mark.skipif(FONT is None, reason="no CJK font (make install-test installs fonts-wqy-microhei)")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Each shipped list written as .docx, .xlsx and .pdf."""
    folder = tmp_path_factory.mktemp("published")
    files: dict[str, dict[str, Path]] = {}
    for town in TOWNS:
        doc = layout(CORPUS_DIR / f"{town}.txt")
        files[town] = {
            "docx": write_docx(doc, folder / f"{town}.docx"),
            "xlsx": write_xlsx(doc, folder / f"{town}.xlsx"),
        }
        if FONT is not None:
            files[town]["pdf"] = write_pdf(doc, folder / f"{town}.pdf", FONT)
    return files


@pytest.mark.parametrize("town", TOWNS)
@pytest.mark.parametrize("kind", ["docx", "xlsx", pytest.param("pdf", marks=needs_font)])
def test_every_format_gives_the_text_exports_records(published, town, kind):
    expected = parse_file(CORPUS_DIR / f"{town}.txt")
    got = parse_file(published[town][kind])
    assert (got.town, got.county, got.prefecture) == (expected.town, expected.county, expected.prefecture)
    assert len(got.items) == len(expected.items)
    for want, have in zip(expected.items, got.items):
        assert have == want, f"{kind} differs at {want.id}"
    assert [i.content_hash for i in got.items] == [i.content_hash for i in expected.items]


def _broken(town: str) -> Layout:
    """The town's list with the 对应上级部门 of 配合履职 item 3 left empty."""
    doc = layout(CORPUS_DIR / f"{town}.txt")
    coordinated = next(t for t in doc.tables if len(t.header) == 6)
    row = list(coordinated.rows[2])
    row[3] = ""
    coordinated.rows[2] = tuple(row)
    return doc


@pytest.mark.parametrize(
    "kind, where",
    [
        ("docx", "table 2 row 4"),  # header row, then items 1..3
        ("xlsx", "清单2!B6"),  # title row 1, header row 3, items from row 4
        pytest.param("pdf", "page ", marks=needs_font),
    ],
)
def test_errors_name_the_place_in_the_files_own_terms(tmp_path, kind, where):
    doc = _broken(TOWNS[0])
    path = tmp_path / f"broken.{kind}"
    {
        "docx": lambda: write_docx(doc, path),
        "xlsx": lambda: write_xlsx(doc, path),
        "pdf": lambda: write_pdf(doc, path, FONT),
    }[kind]()
    with pytest.raises(ParseError) as caught:
        parse_file(path)
    assert caught.value.where.startswith(where)
    assert "配合履职 item 3 names no 对应上级部门" in str(caught.value)
    assert str(path) in str(caught.value)


@needs_font
def test_a_row_broken_across_a_page_break_is_joined(tmp_path):
    """Word splits a long row over two pages; the part on the second page has no 序号 and
    follows the page header and the repeated header row."""
    from fpdf import FPDF

    title = "基本履职事项清单第一项的事项名称很长，后半部分印在下一页上"
    pdf = FPDF(format="A4")
    pdf.add_font("cjk", fname=str(FONT))
    pdf.add_font("cjk", style="B", fname=str(FONT))
    pdf.set_font("cjk", size=9)
    header = ("序号", "事项类别", "事项名称")
    pages = [
        [("1", "党的建设", title[:12])],
        [("", "", title[12:]), ("2", "党的建设", "第二项")],
    ]
    for number, rows in enumerate(pages):
        pdf.add_page()
        if number == 0:
            pdf.cell(0, 8, "昌吉回族自治州吉木萨尔县二工镇基本履职事项清单", new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.cell(0, 8, "二工镇履职事项清单（续）", new_x="LMARGIN", new_y="NEXT")  # a running page header
        with pdf.table(col_widths=(15, 30, 140), repeat_headings=1) as grid:
            for cells in (header, *rows):
                grid.row(cells)
    path = tmp_path / "split.pdf"
    pdf.output(str(path))
    doc = parse_file(path)
    assert [(i.number, i.title) for i in doc.items] == [(1, title), (2, "第二项")]
    assert doc.town == "二工镇"


def test_xlsx_finds_the_header_row_and_undoes_merged_cells(tmp_path):
    doc = Layout(
        cover=[],
        tables=[
            Table(
                "昌吉州奇台县半截沟镇基本履职事项清单",
                ("序号", "事项类别", "事项名称"),
                [("1", "党的建设", "甲"), ("2", "党的建设", "乙"), ("3", "民生服务", "丙")],
            )
        ],
    )
    parsed = parse_file(write_xlsx(doc, tmp_path / "small.xlsx"))
    assert [(i.number, i.category, i.title) for i in parsed.items] == [
        (1, "党的建设", "甲"),
        (2, "党的建设", "乙"),
        (3, "民生服务", "丙"),
    ]
    assert (parsed.town, parsed.county) == ("半截沟镇", "奇台县")


def test_old_office_formats_get_a_conversion_hint(tmp_path):
    path = tmp_path / "清单.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0 not really")
    with pytest.raises(ParseError, match=r"save it as \.docx"):
        parse_file(path)


def test_ingest_a_folder_of_mixed_formats(built_settings, published, tmp_path, monkeypatch):
    """Same lists as Word + Excel next to a broken PDF: the lists go in unchanged (same records,
    nothing re-embedded), the broken file is reported with its reason, the exit status says so."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    shutil.copy(published[TOWNS[0]]["docx"], folder)
    shutil.copy(published[TOWNS[1]]["xlsx"], folder)
    (folder / "扫描件.pdf").write_bytes(b"%PDF-1.4\n% truncated")
    (folder / "说明.md").write_text("not a list", encoding="utf-8")  # not a list format: not picked up
    home = tmp_path / "home"
    shutil.copytree(built_settings.index_dir, home / "index")
    settings = Settings(home=home)

    documents, errors = parse_paths([folder])
    assert sorted(Path(d.source).suffix for d in documents) == [".docx", ".xlsx"]
    assert [Path(e.source).name for e in errors] == ["扫描件.pdf"]

    report = ingest([folder], settings)
    assert (report.added, report.changed, report.removed, report.embedded) == (0, 0, 0, 0)
    assert report.unchanged > 400

    from ui.cli import app

    monkeypatch.setenv("DUTY_HOME", str(home))
    result = CliRunner().invoke(app, ["ingest", str(folder)])
    assert result.exit_code == 1
    output = re.sub(r"\s+", "", result.output)  # rich wraps long lines
    assert "扫描件.pdf" in output and "cannotreadthisfileasaPDF" in output
    assert "Traceback" not in result.output
