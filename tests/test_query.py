import pytest

from assistant.answering.departments import department_key
from assistant.answering.query import Catalog, Intent, chinese_number, understand
from assistant.items import ListKind


@pytest.fixture(scope="module")
def catalog(items):
    return Catalog.from_items(items)


@pytest.mark.parametrize(
    "question, intent, towns, lists, number",
    [
        ("村里有人私自宰羊，镇里该做什么？", Intent.SINGLE, (), (), None),
        ("二工镇配合履职事项第22项是什么", Intent.LOOKUP, ("二工镇",), (ListKind.COORDINATED,), 22),
        ("半截沟收回事项第五项", Intent.LOOKUP, ("半截沟镇",), (ListKind.WITHDRAWN,), 5),
        ("二工基本履职第一百零九项", Intent.LOOKUP, ("二工镇",), (ListKind.BASIC,), 109),
        ("二工镇配合事项第27个是啥", Intent.LOOKUP, ("二工镇",), (ListKind.COORDINATED,), 27),
        ("二工镇第一个来配合调查的村民能领补助吗", Intent.SINGLE, ("二工镇",), (), None),
        ("小区里有人违反《物业管理条例》第六十三条，镇里能罚吗", Intent.SINGLE, (), (), None),
        ("二工镇有多少项配合履职事项", Intent.COUNT, ("二工镇",), (ListKind.COORDINATED,), None),
        ("列出二工镇所有应急管理及消防类事项", Intent.ENUMERATE, ("二工镇",), (), None),
        ("二工镇的收回事项", Intent.ENUMERATE, ("二工镇",), (ListKind.WITHDRAWN,), None),
        ("二工镇哪些配合事项需要配合县消防救援局？", Intent.ENUMERATE, ("二工镇",), (ListKind.COORDINATED,), None),
        ("半截沟镇有哪些事项是二工镇没有的", Intent.COMPARE, ("半截沟镇", "二工镇"), (), None),
        ("二工镇派出所的电话是多少？", Intent.SINGLE, ("二工镇",), (), None),
        ("二工镇学校门口的安全问题镇上要管哪些？", Intent.SINGLE, ("二工镇",), (), None),
    ],
)
def test_intent_and_filters(catalog, question, intent, towns, lists, number):
    query = understand(question, catalog)
    assert (query.intent, query.towns, query.lists, query.number) == (intent, towns, lists, number)


@pytest.mark.parametrize(
    "mention, key",
    [
        ("县水利局", "水利局"),
        ("水利局", "水利局"),
        ("吉木萨尔县水利局", "水利局"),
        ("文旅局", "文化体育广播电视和旅游局"),
        ("文化体育广播电视台和旅游局", "文化体育广播电视和旅游局"),
        ("应急局", "应急管理局"),
        ("人社局", "人力资源和社会保障局"),
        ("卫健委", "卫生健康委员会"),
        ("县委组织部", "县委组织部"),
        ("组织部", "县委组织部"),
        ("生态环境部门", "生态环境局"),
    ],
)
def test_department_mentions_resolve_to_one_key(catalog, mention, key):
    query = understand(f"列出要配合{mention}的事项", catalog)
    assert query.departments == (key,)


@pytest.mark.parametrize(
    ("question", "departments"),
    [
        ("森林草原防火期间镇上要做什么？", ()),  # 林草 (林业和草原局) inside 森林草原
        ("务工信息的统计现在谁来做？", ()),  # 工信 inside 务工信息
        ("县林草局要镇上报什么？", ("林业和草原局",)),
    ],
)
def test_an_abbreviation_inside_a_word_of_the_lists_names_no_department(catalog, question, departments):
    assert understand(question, catalog).departments == departments


@pytest.mark.parametrize(
    "name, key",
    [
        ("吉木萨尔县委组织部", "县委组织部"),
        ("奇台县文化体育广播电视台和旅游局", "文化体育广播电视和旅游局"),
        ("昌吉州生态环境局吉木萨尔县分局", "生态环境局"),
        ("奇台县应急管理局及其他负有安全生产监督管理职责的部门", "应急管理局"),
    ],
)
def test_department_key(name, key):
    assert department_key(name, ("吉木萨尔县", "奇台县", "昌吉回族自治州", "昌吉州")) == key


def test_category_with_lei_beats_a_department_of_the_same_stem(catalog):
    query = understand("半截沟镇自然资源类的收回事项有哪些？", catalog)
    assert query.categories == ("自然资源",) and query.departments == ()


def test_county_names_select_their_townships(catalog):
    assert understand("奇台县消防类事项有哪些", catalog).counties == ("奇台县",)


@pytest.mark.parametrize(
    "text, value", [("22", 22), ("二十二", 22), ("十", 10), ("一百零九", 109), ("３", 3), ("第", None)]
)
def test_chinese_numbers(text, value):
    assert chinese_number(text) == value
