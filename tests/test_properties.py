"""Property-based tests (hypothesis): the parser and query understanding never crash and keep
their invariants on any input."""

from __future__ import annotations

import string

import pytest
from documents import Layout, Table, write_docx, write_text, write_xlsx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.answering.query import Intent, chinese_number, understand
from assistant.ingest.parsing import ParseError, Row, parse_rows, split_steps
from assistant.ingest.readers import read_text
from assistant.items import ListKind

CJK = "党的建设民生服务应急管理及消防农业农村水利自然资源开展负责组织指导监督检查宣传工作村镇县局"
TEXT = st.text(alphabet=CJK + "，、；。（）：" + string.digits + " ", min_size=1, max_size=40)
CELL = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "序号",
            "序 号",
            "事项类别",
            "事项名称",
            "对应上级部门",
            "上级部门职责",
            "乡镇配合职责",
            "承接部门及工作方式",
            "1",
            "2",
            "3",
            "",
            "<p>县水利局</p>",
            "1.甲；2.乙",
        ]
    ),
    st.text(max_size=20),
)
TITLES = st.sampled_from(
    [
        "昌吉回族自治州吉木萨尔县二工镇基本履职事项清单",
        "昌吉州奇台县半截沟镇配合履职事项清单",
        "某县某镇上级部门收回事项清单",
        "履职事项清单",
        "目 录",
    ]
)
ROWS = st.lists(
    st.one_of(st.builds(lambda t: (t,), TITLES), st.lists(CELL, min_size=1, max_size=7).map(tuple)),
    max_size=40,
)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(ROWS)
def test_the_parser_raises_only_parse_errors_and_keeps_its_invariants(rows):
    try:
        doc = parse_rows([Row(cells, n) for n, cells in enumerate(rows, 1)], "fuzz.txt")
    except ParseError as exc:
        assert str(exc).startswith("fuzz.txt:")
        return
    assert doc.town and doc.county
    for kind in ListKind:
        numbers = [i.number for i in doc.items if i.list is kind]
        assert numbers == list(range(1, len(numbers) + 1))
    for item in doc.items:
        assert item.town == doc.town and item.title and item.category
        assert item.title == item.title.strip() and "\n" not in item.title
        assert item.list is not ListKind.COORDINATED or item.departments


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_the_text_reader_accepts_any_bytes_or_says_why_not(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "x.txt"
    path.write_bytes(data)
    try:
        rows = read_text(path)
    except ParseError as exc:
        assert "UTF-8" in exc.reason
        return
    assert all(isinstance(row.where, int) and row.where >= 1 for row in rows)


@fast
@given(st.text(max_size=300))
def test_steps_are_never_empty_or_padded(cell):
    for step in split_steps(cell):
        assert step and step == step.strip(" \t\r\n\u3000；;")


# -- generated documents round-trip through every format ----------------------------------------

NAMES = st.text(alphabet=CJK, min_size=2, max_size=4)


@st.composite
def documents(draw) -> Layout:
    county = draw(NAMES) + "县"
    town = draw(NAMES) + "镇"
    categories = draw(st.lists(NAMES, min_size=1, max_size=3))
    titles = st.text(alphabet=CJK + "，、（）", min_size=1, max_size=60).map(str.strip).filter(bool)
    basic = [(str(n), draw(st.sampled_from(categories)), draw(titles)) for n in range(1, draw(st.integers(1, 8)) + 1)]
    steps = st.lists(st.text(alphabet=CJK, min_size=2, max_size=30), min_size=1, max_size=4)
    coordinated = [
        (
            str(n),
            draw(st.sampled_from(categories)),
            draw(titles),
            f"{county}{draw(NAMES)}局",
            "；".join(f"{k}.{s}" for k, s in enumerate(draw(steps), 1)),
            "\n".join(draw(steps)),
        )
        for n in range(1, draw(st.integers(1, 5)) + 1)
    ]
    prefix = f"某州{county}{town}"
    return Layout(
        cover=[],
        tables=[
            Table(prefix + "基本履职事项清单", ("序号", "事项类别", "事项名称"), basic),
            Table(
                prefix + "配合履职事项清单",
                ("序号", "事项类别", "事项名称", "对应上级部门", "上级部门职责", "乡镇配合职责"),
                coordinated,
            ),
        ],
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents())
def test_generated_lists_read_the_same_from_text_word_and_excel(tmp_path_factory, doc):
    from assistant.ingest.parsing import parse_file

    folder = tmp_path_factory.mktemp("generated")
    expected = parse_file(write_text(doc, folder / "list.txt"))
    for written in (write_docx(doc, folder / "list.docx", title_in_table=False), write_xlsx(doc, folder / "list.xlsx")):
        got = parse_file(written)
        assert got.items == expected.items, written.suffix
        assert (got.town, got.county) == (expected.town, expected.county)


# -- query understanding ------------------------------------------------------------------------


def _chinese(n: int) -> str:
    digits = "零一二三四五六七八九"
    hundreds, tens, ones = n // 100, n // 10 % 10, n % 10
    text = (digits[hundreds] + "百") if hundreds else ""
    if tens:
        text += ("" if tens == 1 and not hundreds else digits[tens]) + "十"
    elif hundreds and ones:
        text += "零"
    if ones or not text:
        text += digits[ones]
    return text


@given(st.integers(0, 999))
def test_chinese_numbers_read_back(n):
    assert chinese_number(_chinese(n)) == n
    assert chinese_number(str(n)) == n


@pytest.fixture(scope="module")
def catalog(assistant):
    return assistant.retriever.catalog


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_understanding_never_crashes_and_names_only_known_places(catalog, question):
    query = understand(question, catalog)
    assert query.intent is not Intent.LOOKUP or query.number is not None, "a lookup needs a 第N项"
    assert query.intent is not Intent.COMPARE or query.compare_mode, "a comparison knows what it compares"
    assert set(query.towns) <= set(catalog.towns.values())
    assert set(query.counties) <= set(catalog.counties.values())
    assert set(query.categories) <= set(catalog.categories.values())
    assert len(set(query.lists)) == len(query.lists)
    assert query.number is None or query.number >= 0
    assert query.text == query.text.strip()
    assert query.intent is not Intent.LOOKUP or query.number is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["二工镇", "半截沟镇", "二工", "半截沟"]),
    st.text(alphabet=string.ascii_letters + " ?", max_size=30),
)
def test_a_named_township_is_always_recognised(catalog, town, rest):
    query = understand(f"{town}的{rest}", catalog)
    assert catalog.towns[town] in query.towns


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=CJK + "？哪些多少第项", max_size=30)))
def test_retrieval_cites_only_loaded_items_and_abstains_without_citations(assistant, question):
    result = assistant.retriever.retrieve(question)
    known = assistant.kb.by_id
    assert all(item.id in known for item in result.cited)
    assert not (result.abstained and result.cited)
    if not result.abstained and result.query.intent is not Intent.COMPARE:
        assert result.cited
