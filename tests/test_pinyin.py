import pytest

from assistant.answering.pinyin import PinyinLexicon
from assistant.index.records import keyword_text


@pytest.fixture(scope="module")
def lexicon(items):
    return PinyinLexicon((keyword_text(item) for item in items), names=["二工镇", "二工", "半截沟镇", "半截沟"])


@pytest.mark.parametrize(
    "typed, word",
    [
        ("dibao申请谁审核", "低保"),  # whole pinyin
        ("gaobiaozhun农田谁管护", "高标准"),
        ("cjr家里无障碍改造", "残疾人"),  # initials, three letters or more
        ("banjiegou的低保谁审核", "半截沟"),  # a place name
        ("bjg的低保谁审核", "半截沟"),
    ],
)
def test_pinyin_is_read_back_as_the_lists_word(lexicon, typed, word):
    restored = lexicon.restore(typed)
    assert word in restored and not any(c.isascii() and c.isalpha() for c in restored)


@pytest.mark.parametrize("text", ["KTV开在地下室谁管", "xj负责吗", "村里qwzx那个事", "没有字母的问题"])
def test_upper_case_short_runs_and_unknown_letters_stay_as_typed(lexicon, text):
    assert lexicon.restore(text) == text


def test_a_question_in_pinyin_finds_its_item(assistant):
    answer = assistant.ask("二工镇dibao申请谁审核")
    assert answer.citations and "低保" in answer.citations[0].title


def test_a_township_typed_in_pinyin_is_the_township(assistant):
    query = assistant.retriever.understand("ergong跟banjiegou在农机上牌上一样吗")
    assert set(query.towns) == {"二工镇", "半截沟镇"}
