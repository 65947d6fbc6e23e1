"""Feedback log and its export as candidate eval questions."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.feedback import Feedback, FeedbackLog, latest
from eval.feedback import candidates, export, known_questions
from eval.questions import load_questions, parse_question
from ui.cli import app as cli


def _write_many(path: str, writer: int, count: int) -> None:
    log = FeedbackLog(Path(path))
    for n in range(count):
        # Longer than PIPE_BUF, so O_APPEND alone would not keep lines whole.
        log.append(Feedback(f"w{writer}-{n}", f"问题{writer}-{n}", comment="很长的意见" * 4000))


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "feedback.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(str(path), w, 25)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    records, errors = FeedbackLog(path).read()
    assert errors == []
    assert len(records) == 100
    assert {r.id for r in records} == {f"w{w}-{n}" for w in range(4) for n in range(25)}
    assert all(r.time for r in records)


def test_unreadable_lines_are_reported_with_their_line_number(tmp_path):
    path = tmp_path / "feedback.jsonl"
    log = FeedbackLog(path)
    log.append(Feedback("a", "问题"))
    with open(path, "a", encoding="utf-8") as out:
        out.write("{not json\n")
        out.write(json.dumps({"id": "b"}) + "\n")
    records, errors = log.read()
    assert [r.id for r in records] == ["a"]
    assert len(errors) == 2
    assert f"{path}:2:" in str(errors[0]) and f"{path}:3:" in str(errors[1])


def test_a_later_record_supersedes_an_earlier_one_with_the_same_id():
    first = Feedback("x", "问", rating="down")
    other = Feedback("y", "问2", rating="up")
    second = Feedback("x", "问", rating="down", comment="应该引用第22项")
    assert latest([first, other, second]) == [other, second]


def test_record_from_a_real_answer(assistant):
    answer = assistant.ask("二工镇有人在家里私自宰羊卖肉，镇里该干点啥？")
    record = Feedback.for_answer("id1", answer, history=["上一问"], towns=["二工镇"])
    assert record.citations == [item.id for item in answer.citations]
    assert record.intent == "single" and record.generator == answer.generator
    assert record.history == ["上一问"] and record.towns == ["二工镇"]


def test_only_downvoted_or_corrected_answers_become_candidates(items):
    withdrawn = next(i.id for i in items if i.list.value == "withdrawn")
    records = [
        Feedback("up", "满意的问题", citations=["二工镇:coordinated:22"], rating="up"),
        Feedback("confirmed", "确认的问题", citations=["二工镇:coordinated:22"], expected=["二工镇:coordinated:22"]),
        Feedback("down", "不满意的问题", citations=["二工镇:coordinated:22"], rating="down", comment="不对"),
        Feedback("fixed", "纠正的问题", citations=["二工镇:coordinated:22"], expected=[withdrawn], intent="single"),
        Feedback("oos", "清单外的问题", citations=["二工镇:basic:1"], out_of_scope=True, intent="single"),
        Feedback("count", "有多少项", rating="down", expected=["二工镇:basic:1", "二工镇:basic:2"], intent="count"),
        Feedback(
            "follow",
            "那半截沟镇呢？",
            history=["二工镇私屠滥宰归谁管？"],
            rating="down",
            expected=["半截沟镇:coordinated:22"],
            intent="single",
        ),
    ]
    questions, incomplete = candidates(records)
    found = {q["question"]: q for q in questions}
    assert set(found) == {"纠正的问题", "清单外的问题", "有多少项", "那半截沟镇呢？"}
    assert [r.question for r in incomplete] == ["不满意的问题"]  # no gold to export, reported instead
    for number, question in enumerate(questions, 1):
        parse_question(question, f"export:{number}")  # the eval set's own schema check
    assert found["纠正的问题"]["kind"] == "withdrawn" and found["纠正的问题"]["gold"] == [withdrawn]
    assert found["清单外的问题"]["kind"] == "out_of_scope" and found["清单外的问题"]["gold"] == []
    assert found["有多少项"]["kind"] == "count" and found["有多少项"]["count"] == 2
    assert found["有多少项"]["match"] == "all"
    assert found["那半截沟镇呢？"]["kind"] == "follow_up"
    assert found["那半截沟镇呢？"]["history"] == ["二工镇私屠滥宰归谁管？"]
    assert "the assistant cited: 二工镇:coordinated:22" in found["纠正的问题"]["note"]


def test_questions_already_in_the_eval_set_are_skipped():
    known = known_questions()
    assert len(known) == len(load_questions())
    question, history = next(iter(known))
    record = Feedback("k", question, history=list(history), rating="down", out_of_scope=True)
    assert candidates([record], known) == ([], [])
    assert len(candidates([record])[0]) == 1


def test_cli_export_writes_eval_format(tmp_path, monkeypatch):
    monkeypatch.setenv("DUTY_HOME", str(tmp_path))
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    log.append(
        Feedback(
            "a1",
            "村里修路归谁管？",
            citations=["二工镇:basic:1"],
            rating="down",
            comment="不对",
            expected=["二工镇:basic:2"],
        )
    )
    log.append(Feedback("a2", "很好的回答", rating="up"))
    log.append(Feedback("a3", "说不清哪里不对", rating="down", comment="太笼统"))
    output = tmp_path / "candidates.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", "-o", str(output)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line["question"] for line in lines] == ["村里修路归谁管？"]
    assert lines[0]["gold"] == ["二工镇:basic:2"] and "comment: 不对" in lines[0]["note"]
    assert "说不清哪里不对" in result.output and "太笼统" in result.output  # reported, not dropped silently
    assert export(log).questions == lines


@pytest.mark.parametrize("line", ["[1, 2]", '{"id": "", "question": "x"}'])
def test_records_need_an_id_and_a_question(tmp_path, line):
    path = tmp_path / "feedback.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    records, errors = FeedbackLog(path).read()
    assert records == [] and len(errors) == 1
