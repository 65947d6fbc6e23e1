"""Rule-based follow-ups, offline: resolved against the conversation before retrieval."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from assistant.answering.followup import Turn, resolve
from assistant.items import ListKind

SLAUGHTER = "二工镇私屠滥宰归谁管？"


@pytest.fixture(scope="module")
def catalog(assistant):
    return assistant.retriever.catalog


def turn(assistant, question: str, history=()) -> Turn:
    return Turn(question, assistant.ask(question, history=list(history)))


def test_without_history_nothing_changes(catalog):
    resolution = resolve("那半截沟镇呢？", [], catalog)
    assert resolution.question == "那半截沟镇呢？" and not resolution.rewritten


@pytest.mark.parametrize(
    "question", ["二工镇有多少项收回事项？", "半截沟镇村里流浪狗谁来管？", "二工镇配合履职事项第22项是什么？"]
)
def test_self_contained_questions_pass_through(assistant, catalog, question):
    resolution = resolve(question, [turn(assistant, SLAUGHTER)], catalog)
    assert resolution.question == question and resolution.rule == ""


def test_township_switch(assistant, catalog):
    history = [turn(assistant, SLAUGHTER)]
    resolution = resolve("那半截沟镇呢？", history, catalog)
    assert resolution.question == "半截沟镇私屠滥宰归谁管？" and resolution.rule == "scope"
    answer = assistant.ask("那半截沟镇呢？", history=history)
    assert answer.citations and {i.town for i in answer.citations} == {"半截沟镇"}
    assert [i.id for i in answer.citations] == [i.id for i in assistant.ask(resolution.question).citations]
    assert answer.resolved_question == resolution.question


@pytest.mark.parametrize(
    ("question", "earlier", "expected"),
    [
        ("二工镇一样吗？", "半截沟镇村里流浪狗谁来管？", "二工镇村里流浪狗谁来管？"),
        ("半截沟镇也是这样吗？", "二工镇的老人高龄津贴是怎么发的？", "半截沟镇的老人高龄津贴是怎么发的？"),
        ("半截沟镇是哪个部门？", "二工镇科技特派员归县里哪个部门管？", "半截沟镇科技特派员归县里哪个部门管？"),
        ("那半截沟呢", "村里有人私自宰羊，镇里该做什么？", "半截沟镇村里有人私自宰羊，镇里该做什么？"),
        # words repeated from the earlier question, or asking to swap, name no new topic
        ("那在半截沟镇申请呢？", "二工镇想申请公租房，怎么弄？", "半截沟镇想申请公租房，怎么弄？"),
        ("换成半截沟镇呢？", "二工镇想申请块宅基地盖房，镇上批吗？", "半截沟镇想申请块宅基地盖房，镇上批吗？"),
    ],
)
def test_township_switch_phrasings(catalog, question, earlier, expected):
    assert resolve(question, [Turn(earlier)], catalog).question == expected


def test_list_switch(assistant, catalog):
    history = [turn(assistant, "二工镇基本履职事项有多少项？")]
    resolution = resolve("那配合事项呢", history, catalog)
    assert resolution.rule == "scope" and "配合履职" in resolution.question and "基本" not in resolution.question
    answer = assistant.ask("那配合事项呢", history=history)
    assert answer.citations and {(i.town, i.list) for i in answer.citations} == {("二工镇", ListKind.COORDINATED)}


def test_more_excludes_what_was_already_cited(assistant, catalog):
    first = turn(assistant, "村里有人私自宰羊，镇里该做什么？")
    resolution = resolve("还有吗？", [first], catalog)
    assert resolution.question == first.question and resolution.rule == "more"
    assert set(resolution.exclude) == {i.id for i in first.answer.citations}
    second = assistant.ask("还有吗？", history=[first])
    assert not {i.id for i in second.citations} & set(resolution.exclude)
    assert second.excluded == list(resolution.exclude)
    third = assistant.ask("还有吗？", history=[first, Turn("还有吗？", second)])
    assert not {i.id for i in third.citations} & ({i.id for i in second.citations} | set(resolution.exclude))


def test_more_after_a_complete_set_has_nothing_left(assistant):
    first = turn(assistant, "半截沟镇收回到县住建局的事项有哪些？")
    answer = assistant.ask("还有别的吗？", history=[first])
    assert answer.abstained and answer.citations == []


@pytest.mark.parametrize("question", ["第二项具体要做什么？", "第2个呢"])
def test_ordinal_refers_to_the_previous_answers_items(assistant, catalog, question):
    first = turn(assistant, "半截沟镇收回到县住建局的事项有哪些？")
    target = first.answer.citations[1]
    resolution = resolve(question, [first], catalog)
    assert resolution.rule == "ordinal"
    assert resolution.question.startswith(f"{target.town}{target.list.label}第{target.number}项")
    answer = assistant.ask(question, history=[first])
    assert [i.id for i in answer.citations] == [target.id]


def test_ordinal_beyond_the_previous_answer_is_not_a_reference(assistant, catalog):
    first = turn(assistant, "半截沟镇收回到县住建局的事项有哪些？")
    far = len(first.answer.citations) + 1
    assert resolve(f"第{far}项呢", [first], catalog).rule != "ordinal"


def test_this_item_refers_to_the_single_cited_item(assistant, catalog):
    first = turn(assistant, "二工镇配合履职事项第22项是什么？")
    (item,) = first.answer.citations
    resolution = resolve("这项县里是哪个部门负责？", [first], catalog)
    assert resolution.rule == "this" and resolution.question.startswith(
        f"{item.town}{item.list.label}第{item.number}项"
    )
    assert [i.id for i in assistant.ask("这项县里是哪个部门负责？", history=[first]).citations] == [item.id]


def test_new_topic_carries_the_township_over(catalog):
    resolution = resolve("那森林草原着火呢，谁牵头？", [Turn("半截沟镇的防汛抗旱预案由县里哪个部门指导？")], catalog)
    assert resolution.rule == "carry" and resolution.question.startswith("半截沟镇")
    assert "防汛" not in resolution.question


def test_narrowing_carries_the_earlier_filters(assistant, catalog):
    resolution = resolve("其中交通运输类的是哪几项？", [Turn("二工镇有多少项收回事项？")], catalog)
    assert resolution.rule == "carry"
    answer = assistant.ask("其中交通运输类的是哪几项？", history=[Turn("二工镇有多少项收回事项？")])
    assert answer.citations
    assert all(
        i.town == "二工镇" and i.list is ListKind.WITHDRAWN and "交通运输" in i.category for i in answer.citations
    )


def test_question_without_a_topic_continues_the_previous_one(assistant, catalog):
    earlier = "村里有人私自宰羊，镇里该做什么？"
    resolution = resolve("具体要报给县里哪个部门？", [Turn(earlier)], catalog)
    assert resolution.rule == "continue" and resolution.question.startswith(earlier)
    cited = {i.id for i in assistant.ask("具体要报给县里哪个部门？", history=[Turn(earlier)]).citations}
    assert cited & {i.id for i in assistant.ask(earlier).citations}


@pytest.mark.parametrize("question", ["需要什么材料？", "要带啥证件", "在哪办？", "多久能办下来", "什么时候能批下来？"])
def test_asking_for_details_continues_the_previous_subject(assistant, catalog, question):
    """Materials, place, time: what is asked about a subject, not a subject of its own ("需要什么材料"
    alone was searched and declined with 干部人事档案工作 as its related item)."""
    earlier = "低保谁审核？"
    resolution = resolve(question, [Turn(earlier)], catalog)
    assert resolution.rule == "continue" and resolution.question.startswith(earlier)
    subject = {i.id for i in assistant.ask(earlier).citations}
    answer = assistant.ask(question, history=[Turn(earlier)])
    assert {i.id for i in answer.citations + answer.related} & subject


def test_chat_command_resolves_follow_ups_offline(built_settings):
    env = {**os.environ, "DUTY_HOME": str(built_settings.home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("DUTY_LLM_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "ui.cli", "chat"],
        input="二工镇私屠滥宰归谁管？\n那半截沟镇呢？\n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.index("〔二工镇·配合履职·第22项〕")
    assert done.stdout.index("〔半截沟镇·配合履职·第22项〕", first) > first


def test_a_new_subject_after_a_comparison_is_compared(assistant, catalog):
    """After "两个镇在防汛上有什么不同", "那消防呢" asks the same of 消防 (carried as filters, it was
    asked of 消防 alone and answered with one township's items first)."""
    earlier = "两个镇在防汛上有什么不同"
    resolution = resolve("那消防呢？", [Turn(earlier)], catalog)
    assert resolution.rule == "compare" and resolution.question == "两个镇在消防上有什么不同"
    answer = assistant.ask("那消防呢？", history=[turn(assistant, earlier)])
    assert answer.retrieval.query.intent.value == "compare" and answer.retrieval.pairs
    assert {i.town for i in answer.citations} == set(assistant.kb.towns)
    assert all("消防" in i.title for i in answer.citations)
    assert resolve("那二工镇的消防呢", [Turn(earlier)], catalog).rule != "compare"  # one township: not compared
