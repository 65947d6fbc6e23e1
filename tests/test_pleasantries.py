"""Greetings and thanks get a short reply; anything more is a question and is searched."""

from __future__ import annotations

import pytest

from assistant.answering.pleasantries import THANKS_REPLY, reply
from ui.render import ABSTAIN_BANNER, answer_html

TOWNS = ("甲镇", "乙镇")


@pytest.mark.parametrize(
    "message", ["你好", "您好！", "在吗？", "Hello 助手", "你好啊老师", "请问", "你能做什么？", "怎么用", "help"]
)
def test_a_greeting_is_told_what_the_assistant_answers(message):
    text = reply(message, TOWNS)
    assert text and "甲镇、乙镇" in text and "例如" in text


@pytest.mark.parametrize("message", ["谢谢", "谢谢您！", "好的，收到", "好的我知道了", "OK"])
def test_thanks_get_a_short_reply(message):
    assert reply(message, TOWNS) == THANKS_REPLY


@pytest.mark.parametrize(
    "message",
    [
        "你好，私自宰羊归谁管",
        "请问低保谁审核",
        "第一书记好",
        "好的，那半截沟呢",
        "收到的材料谁审核",
        "镇上能帮助困难户吗",
    ],
)
def test_anything_more_is_a_question(message):
    assert reply(message, TOWNS) is None


def test_a_greeting_cites_nothing_and_shows_no_banner(assistant):
    answer = assistant.ask("您好！")
    assert answer.text.startswith("您好") and all(t in answer.text for t in assistant.kb.towns)
    assert answer.citations == [] and answer.related == []
    assert ABSTAIN_BANNER not in answer_html(answer)
    searched = assistant.ask("您好，二工镇私自宰羊归谁管？")
    assert "二工镇:coordinated:22" in [item.id for item in searched.citations]
