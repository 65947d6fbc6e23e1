"""Hostile files and text: one character must not brick the index, a small file must not
exhaust the machine, one bad file must cost only itself (issue 14, items 1, 2, 3, 13)."""

from __future__ import annotations

import io
import json
import os
import re
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from documents import Layout, Table, write_docx, write_text
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant import jsonl
from assistant.feedback import Feedback, FeedbackLog
from assistant.index import ingest, make_embedder, open_index
from assistant.ingest.parsing import ParseError, parse_file, parse_paths
from assistant.ingest.readers import Limits
from assistant.settings import Settings

# Every character str.splitlines() splits on: the class of characters that broke the index.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# Any Unicode scalar value (lone surrogates cannot come out of a decoded document).
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["a\u2028b", "\u2029", "x\x85y", "[/bold]", ":100:", "[link=http://127.0.0.1:9/]点我[/link]", "\r\n"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


# -- one JSONL reader/writer -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON_VALUES, max_size=6))
def test_any_record_round_trips_and_stays_one_line(records):
    text = "".join(jsonl.dumps(record) + "\n" for record in records)
    assert [r for _, r in jsonl.parse(text, "t.jsonl")] == [r for r in records if jsonl.dumps(r).strip(" \t\r")]
    assert len(text.splitlines()) == len(records)  # safe for tools that use splitlines()
    assert not any(c in line for line in text.split("\n") for c in LINE_BREAKS)


def test_files_written_before_the_fix_still_read(tmp_path):
    """The old writer left U+2028 raw; the reader splits on "\\n" only, so those files read."""
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"t": "甲\u2028乙\x85丙\u2029"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert jsonl.read(path) == [(1, {"t": "甲\u2028乙\x85丙\u2029"})]


def test_a_damaged_line_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": \n')
    with pytest.raises(jsonl.JsonlError, match=re.escape(f"{path}:3:")):
        jsonl.read(path)
    path.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(jsonl.JsonlError, match=re.escape(f"{path}:2: not UTF-8")):
        jsonl.read(path)


def test_feedback_with_line_separators_is_kept(tmp_path):
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    for n, text in enumerate(["问\u2028题", "问\u2029题", "问\x85题", "问[/bold]题"]):
        log.append(Feedback(id=f"f{n}", question=text, comment=text, rating="down", expected=["甲镇:basic:1"]))
    records, errors = log.read()
    assert errors == [] and [r.question for r in records] == ["问\u2028题", "问\u2029题", "问\x85题", "问[/bold]题"]


def test_atomic_write_replaces_whole_files_only(tmp_path):
    path = tmp_path / "CURRENT"
    jsonl.write_atomic(path, "gen-1")
    jsonl.write_atomic(path, iter(["gen-", "2"]))
    assert path.read_text(encoding="utf-8") == "gen-2" and sorted(tmp_path.iterdir()) == [path]


# -- any item text survives ingest → items.jsonl → KnowledgeBase → show ----------------------------

# What a .docx can carry: XML 1.0 characters (no C0 controls but tab/newline/CR, no U+FFFE/F).
DOCX_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff", min_codepoint=0x20)
    | st.sampled_from(list("\u2028\u2029\x85[]:/")),
    min_size=1,
    max_size=30,
).filter(lambda t: re.sub(r"<[^>]+>|\s", "", t).strip())


def _one_item_list(title: str, category: str) -> Layout:
    return Layout(
        cover=[],
        tables=[
            Table(
                "某州某县甲镇基本履职事项清单",
                ("序号", "事项类别", "事项名称"),
                [("1", "民生服务", "固定事项"), ("2", category, title)],
            )
        ],
    )


@pytest.fixture(scope="module")
def embedder():
    return make_embedder(Settings())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=DOCX_TEXT, category=DOCX_TEXT)
@example(title="[/bold]收回:100: file:100", category="[link=http://127.0.0.1:9/]类[/link]")
@example(title="甲\u2028乙\u2029丙\x85丁", category="民生\u2028服务")
def test_any_item_text_round_trips_through_the_index(tmp_path_factory, embedder, monkeypatch, title, category):
    folder = tmp_path_factory.mktemp("roundtrip")
    path = write_docx(_one_item_list(title, category), folder / "甲镇.docx", title_in_table=False)
    try:
        parsed = parse_file(path)
    except ParseError:
        return  # text the parser refuses (e.g. only markup) is reported, not indexed
    settings_ = Settings(home=folder / "home")
    report = ingest([path], settings_, embedder=embedder)
    assert report.ok, report.errors
    kb = open_index(settings_, embedder)
    assert [i.to_dict() for i in kb.items] == [i.to_dict() for i in parsed.items]
    assert _shown(kb, monkeypatch, parsed.items[1].id) == parsed.items[1].full_text() + "\n"
    again = ingest([path], settings_, embedder=embedder)  # and the index still opens for the next ingest
    assert again.ok and again.embedded == 0


def _shown(kb, monkeypatch, item_id: str) -> str:
    """What `duty-assistant show` prints for the item (its real console, captured)."""
    from types import SimpleNamespace

    from ui import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "_open_assistant", lambda: SimpleNamespace(kb=kb))
    monkeypatch.setattr(cli.out, "_file", buffer)  # not `file`: restoring it would pin a stale stream
    cli.show(item_id)
    return buffer.getvalue()


def test_an_index_written_by_the_old_writer_opens_and_can_be_replaced(tmp_path, embedder):
    """A live items.jsonl with raw U+2028 (the bricked index of the issue) opens again, and a
    damaged one is named by file:line and repaired by `ingest --replace`."""
    path = write_docx(_one_item_list("甲\u2028乙", "民生服务"), tmp_path / "甲镇.docx", title_in_table=False)
    settings_ = Settings(home=tmp_path / "home")
    assert ingest([path], settings_, embedder=embedder).ok
    items = open_index(settings_, embedder).folder / "items.jsonl"
    records = [r for _, r in jsonl.read(items)]
    items.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert "\u2028" in items.read_text(encoding="utf-8")
    assert open_index(settings_, embedder).items[1].title == "甲\u2028乙"
    items.write_text(items.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    with pytest.raises(jsonl.JsonlError, match=re.escape(f"{items}:3:")):
        open_index(settings_, embedder)
    with pytest.raises(RuntimeError, match="--replace"):
        ingest([path], settings_, embedder=embedder)
    assert ingest([path], settings_, replace=True, embedder=embedder).ok
    assert open_index(settings_, embedder).items[1].title == "甲\u2028乙"


# -- readers bounded by content, not file size --------------------------------------------------


def _refused_quickly(path: Path, limit: str, limits: Limits | None = None, seconds: float = 10.0) -> ParseError:
    """Parse, expecting a ParseError naming `limit`, fast and within bounded (Python) memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ParseError) as caught:
            parse_file(path, limits)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert limit in str(caught.value) and str(path) in str(caught.value)
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    return caught.value


def test_xlsx_with_one_cell_at_the_last_row_and_column(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.cell(1, 1, "某县甲镇基本履职事项清单")
    book.active.cell(1048576, 16384, "x")
    path = tmp_path / "bomb.xlsx"
    book.save(path)
    assert path.stat().st_size < 20_000
    _refused_quickly(path, "max_rows")


def test_xlsx_whose_declared_dimension_lies(tmp_path):
    """Without the <dimension> shortcut the streaming count must still stop it."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.cell(1, 1, "甲")
    book.active.cell(1048576, 16384, "x")
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    path = tmp_path / "lying.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1"/>', data)
            target.writestr(info, data)
    _refused_quickly(path, "max_rows")
    wide = tmp_path / "wide.xlsx"
    book = openpyxl.Workbook()
    for column in range(1, 80):
        book.active.cell(1, column, "列")
    book.save(wide)
    _refused_quickly(wide, "max_columns")


def test_xlsx_with_too_many_cells(tmp_path):
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for _ in range(300):
        sheet.append(["格"] * 20)
    path = tmp_path / "cells.xlsx"
    book.save(path)
    error = _refused_quickly(path, "max_cells", Limits.from_settings(Settings(max_cells=5000)))
    assert "cells" in error.reason


def _docx_with_body(tmp_path: Path, body: str) -> Path:
    import docx

    plain = tmp_path / "plain.docx"
    docx.Document().save(plain)
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = re.sub(rb"<w:body>.*</w:body>", b"<w:body>" + body.encode() + b"</w:body>", data, flags=re.S)
            target.writestr(info, data)
    return path


def test_docx_with_hundreds_of_thousands_of_paragraphs(tmp_path):
    path = _docx_with_body(tmp_path, "<w:p/>" * 400_000)
    assert path.stat().st_size < 200_000
    _refused_quickly(path, "max_paragraphs")


def test_docx_with_too_many_table_rows(tmp_path):
    row = "<w:tr><w:tc><w:p><w:r><w:t>1</w:t></w:r></w:p></w:tc></w:tr>"
    path = _docx_with_body(tmp_path, f"<w:tbl>{row * 20_000}</w:tbl>")
    _refused_quickly(path, "max_rows")


def test_pdf_with_too_many_pages(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=8)
    for _ in range(60):
        pdf.add_page()
        pdf.cell(text="1")
    path = tmp_path / "pages.pdf"
    pdf.output(str(path))
    _refused_quickly(path, "max_pages", Limits.from_settings(Settings(max_pages=50)))


def test_text_with_too_many_lines_or_characters(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("甲\n" * 200, encoding="utf-8")
    _refused_quickly(path, "max_rows", Limits.from_settings(Settings(max_rows=100)))
    _refused_quickly(path, "max_chars", Limits.from_settings(Settings(max_chars=100)))


def test_limits_default_to_the_settings():
    assert Limits.from_settings() == Limits.from_settings(Settings())
    assert Limits.from_settings(Settings(max_rows=7)).rows == 7


def test_ingest_applies_the_configured_limits(tmp_path, embedder):
    path = write_text(_one_item_list("殡葬改革", "民生服务"), tmp_path / "甲镇.txt")
    report = ingest([path], Settings(home=tmp_path / "home", max_rows=3), embedder=embedder)
    assert [e.source for e in report.errors] == [str(path)] and "max_rows" in str(report.errors[0])


# -- one bad file costs only itself -------------------------------------------------------------


def _good_list(folder: Path, town: str = "甲镇") -> Path:
    return write_text(_one_item_list("殡葬改革", "民生服务"), folder / f"{town}.txt")


@pytest.mark.parametrize("number", ["²", "①", "٣"])
def test_a_number_python_calls_a_digit_is_a_clear_error(tmp_path, number):
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = _good_list(folder)
    bad = folder / "乙镇.txt"
    bad.write_text(
        good.read_text(encoding="utf-8").replace("甲镇", "乙镇").replace("\n2\t", f"\n{number}\t"), encoding="utf-8"
    )
    documents, errors = parse_paths([folder])
    assert [d.town for d in documents] == ["甲镇"]
    assert len(errors) == 1 and str(errors[0]).startswith(f"{bad}:")
    if number == "²":  # the other two are no digits to Python: they fail the order check instead
        assert "is not a number" in str(errors[0])


def test_an_unreadable_file_is_reported_and_the_others_import(tmp_path, monkeypatch):
    folder = tmp_path / "inbox"
    folder.mkdir()
    _good_list(folder, "甲镇")
    locked = _good_list(folder, "乙镇")
    original = Path.read_text

    def read_text(self, *args, **kwargs):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    documents, errors = parse_paths([folder])
    assert [d.town for d in documents] == ["甲镇"]
    assert [e.source for e in errors] == [str(locked)] and "Permission denied" in str(errors[0])


def test_an_unreadable_subfolder_is_reported_not_skipped(tmp_path, monkeypatch):
    folder = tmp_path / "inbox"
    (folder / "locked").mkdir(parents=True)
    _good_list(folder)
    _good_list(folder / "locked", "乙镇")
    original = os.scandir

    def scandir(path="."):
        if Path(path) == folder / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(os, "scandir", scandir)
    documents, errors = parse_paths([folder])
    assert [d.town for d in documents] == ["甲镇"]
    assert [e.source for e in errors] == [str(folder / "locked")] and "cannot read the folder" in str(errors[0])
