from pathlib import Path

import pytest

from assistant.ingest.parsing import ParseError, Row, parse_file, parse_rows, split_receivers, split_steps
from assistant.items import DutyItem, ListKind, Receiver
from assistant.settings import CORPUS_DIR

ERGONG = CORPUS_DIR / "二工镇.txt"
BANJIEGOU = CORPUS_DIR / "半截沟镇.txt"


@pytest.fixture(scope="module")
def docs():
    return {d.town: d for d in map(parse_file, (ERGONG, BANJIEGOU))}


def by_id(doc, kind: str, number: int) -> DutyItem:
    return next(i for i in doc.items if i.list is ListKind(kind) and i.number == number)


@pytest.mark.parametrize(
    "town, county, counts",
    [("二工镇", "吉木萨尔县", (109, 102, 30)), ("半截沟镇", "奇台县", (109, 99, 37))],
)
def test_shipped_documents_parse_completely(docs, town, county, counts):
    doc = docs[town]
    assert (doc.town, doc.county, doc.prefecture) == (town, county, "昌吉回族自治州")
    assert tuple(doc.count(k) for k in ListKind) == counts
    for kind in ListKind:
        numbers = [i.number for i in doc.items if i.list is kind]
        assert numbers == list(range(1, len(numbers) + 1))
    assert all(i.title and i.category for i in doc.items)
    assert all("<" not in text for i in doc.items for text in (i.title, *i.department_duties, *i.township_duties))


def test_place_names_come_from_the_document_not_the_file_name(tmp_path):
    renamed = tmp_path / "whatever.txt"
    renamed.write_bytes(BANJIEGOU.read_bytes())
    doc = parse_file(renamed)
    assert (doc.town, doc.county) == ("半截沟镇", "奇台县")
    assert {i.town for i in doc.items} == {"半截沟镇"}


def test_coordinated_item_fields(docs):
    item = by_id(docs["二工镇"], "coordinated", 22)
    assert item.title == "“私屠滥宰”执法监管"
    assert item.category == "乡村振兴"
    assert item.departments == ("吉木萨尔县农业农村局",)
    assert item.department_duties == (
        "负责推送需核实检查的违法行为",
        "对劝说无果的“私屠滥宰”行为派专人前往检查核实",
        "对确属“私屠滥宰”违法行为予以处理",
    )
    assert item.township_duties[-1] == "对有“私屠滥宰”行为的及时劝说制止"
    assert item.id == "二工镇:coordinated:22"
    assert item.citation == "〔二工镇·配合履职·第22项〕"


def test_departments_split_on_enumeration_comma(docs):
    item = by_id(docs["二工镇"], "coordinated", 15)
    assert item.departments == (
        "吉木萨尔县民政局",
        "吉木萨尔县公安局",
        "吉木萨尔县住房和城乡建设局",
        "吉木萨尔县卫生健康委员会",
    )


def test_department_name_variants_are_kept_verbatim(docs):
    names = {d for i in docs["二工镇"].items for d in i.departments}
    assert {"吉木萨尔县文化体育广播电视和旅游局", "吉木萨尔县文化体育广播电视台和旅游局"} <= names


def test_withdrawn_item_receivers(docs):
    item = by_id(docs["二工镇"], "withdrawn", 1)
    assert item.receivers == (Receiver("吉木萨尔县民政局", "依据婚姻登记历史档案，出具婚姻状况证明，并加盖公章。"),)
    two = by_id(docs["二工镇"], "withdrawn", 22)
    assert two.receiver_departments == ("吉木萨尔县自然资源局", "吉木萨尔县住房和城乡建设局")
    html = by_id(docs["半截沟镇"], "withdrawn", 37)
    assert html.receiver_departments == ("奇台县消防救援局",)
    assert "<" not in html.receivers[0].handling


def test_repeated_duty_line_is_kept_once_with_a_warning(docs):
    item = by_id(docs["半截沟镇"], "coordinated", 21)
    assert len(item.department_duties) == len(set(item.department_duties)) == 7
    assert any("item 21 repeats a duty line" in w for w in docs["半截沟镇"].warnings)


@pytest.mark.parametrize(
    "cell, steps",
    [
        ("1.宣传；2.核查；3.制止。", ("宣传", "核查", "制止")),
        ("<p>1.宣传；</p> <p>2.核查。</p>", ("宣传", "核查")),
        ("1.宣传; 2.核查; 3.上报", ("宣传", "核查", "上报")),
        ("（1）宣传；（2）核查", ("宣传", "核查")),
        ('<ol style="list-style-type: none"> 开展宣传； 建立台账； 巡回检查。', ("开展宣传", "建立台账", "巡回检查")),
        ("<p>县水利局：</p> <ol> 防汛巡查； 水工程监管。", ("县水利局：防汛巡查", "县水利局：水工程监管")),
        (
            "县自然资源局 1.制定方案； 2.审批。 县农业农村局 牵头协调。",
            ("县自然资源局：制定方案", "县自然资源局：审批", "县农业农村局：牵头协调"),
        ),
        (
            "一、秸秆利用 1.指导； 2.台账。 二、秸秆禁烧 1.宣传。",
            ("秸秆利用：指导", "秸秆利用：台账", "秸秆禁烧：宣传"),
        ),
        ("向上级党组织上报名额信息。", ("向上级党组织上报名额信息",)),
        ("执行12345热线转办事项，2.5小时内反馈", ("执行12345热线转办事项，2.5小时内反馈",)),
        ("做好&ldquo;双拥&rdquo;工作", ("做好“双拥”工作",)),
    ],
)
def test_step_styles_normalise(cell, steps):
    assert split_steps(cell) == steps


def test_receivers_without_a_department_keep_the_text():
    assert split_receivers("由县里统一负责。") == (Receiver("", "由县里统一负责。"),)


def rows(text: str) -> list[Row]:
    return [Row(tuple(line.split("\t")), n) for n, line in enumerate(text.splitlines(), 1)]


GOOD = """新疆维吾尔自治区某某地区
某某县甲乡
履职事项清单
某某地区某某县甲乡基本履职事项清单
序号\t事项类别\t事项名称
1\t党的建设\t加强党的建设
序号\t事项类别\t事项名称
2\t经济发展\t发展经济
某某地区某某县甲乡配合履职事项单
序号\t事项类别\t事项名称\t对应上级部门\t上级部门职责\t乡镇配合职责
1\t民生服务\t救助\t某某县民政局、某某县财政局\t1.审核；2.发放\t1.摸排；2.上报
某某地区某某县甲乡上级部门收回事项清单
序号\t事项类别\t事项名称\t承接部门及工作方式
1\t民生服务\t收养登记\t某某县民政局： 负责收养登记。
"""


def test_structure_not_strings_decides_sections():
    doc = parse_rows(rows(GOOD), "x.txt")
    assert (doc.town, doc.county, doc.prefecture) == ("甲乡", "某某县", "某某地区")
    assert [(i.list.value, i.number) for i in doc.items] == [
        ("basic", 1),
        ("basic", 2),
        ("coordinated", 1),
        ("withdrawn", 1),
    ]
    assert doc.items[2].departments == ("某某县民政局", "某某县财政局")


@pytest.mark.parametrize(
    "broken, line, reason",
    [
        (GOOD.replace("2\t经济发展\t发展经济", "3\t经济发展\t发展经济"), 8, "out of order"),
        (GOOD.replace("2\t经济发展\t发展经济", "2\t经济发展"), 8, "columns"),
        (GOOD.replace("1\t党的建设\t加强党的建设", "1\t党的建设\t"), 6, "empty 事项名称"),
        (GOOD.replace("某某县民政局、某某县财政局", ""), 11, "对应上级部门"),
        (GOOD.replace("某某地区某某县甲乡上级部门收回", "某某地区某某县乙乡上级部门收回"), 12, "乙乡"),
    ],
)
def test_malformed_rows_name_file_and_line(broken, line, reason):
    with pytest.raises(ParseError) as error:
        parse_rows(rows(broken), "bad.txt")
    assert error.value.source == "bad.txt"
    assert error.value.where == str(line)
    assert reason in str(error.value)
    assert str(error.value).startswith(f"bad.txt:{line}:")


def test_document_without_a_table_is_rejected():
    with pytest.raises(ParseError, match="no duty-list table"):
        parse_rows(rows("只是一段文字\n没有表格\n"), "empty.txt")


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "gbk.txt"
    path.write_bytes("某某县甲乡\n履职事项清单\n".encode("gbk"))
    with pytest.raises(ParseError, match="not UTF-8") as error:
        parse_file(path)
    assert error.value.where == "1"


@pytest.mark.parametrize("name, message", [("list.odt", "unsupported file type"), ("list.doc", "save it as .docx")])
def test_unknown_file_type_is_rejected(tmp_path, name, message):
    path = tmp_path / name
    path.write_bytes(b"\xd0\xcf")
    with pytest.raises(ParseError, match=message):
        parse_file(Path(path))
