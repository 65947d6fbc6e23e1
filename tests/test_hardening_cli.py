"""Hostile questions, bytes, markup and configuration at the command line (issue 14, items
9, 10, 11, 14): a clear answer, refusal or error every time, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from assistant.answering.query import chinese_number, understand
from assistant.answering.retrieve import EMPTY_QUESTION
from assistant.index import ingest
from assistant.settings import Settings
from ui.cli import app

CLI = [sys.executable, "-m", "ui.cli"]
NASTY_TITLE = "[/bold]私屠滥宰:100:[link=http://127.0.0.1:9/]点我[/link]"


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory) -> Path:
    """A small real index: one township, one item with markup-like text."""
    folder = tmp_path_factory.mktemp("tiny")
    source = folder / "甲乡.txt"
    source.write_text(
        "某某县甲乡\n履职事项清单\n某某县甲乡基本履职事项清单\n序号\t事项类别\t事项名称\n"
        f"1\t民生服务\t负责本乡殡葬改革工作\n2\t[red]应急[/red]\t{NASTY_TITLE}\n",
        encoding="utf-8",
    )
    home = folder / "home"
    assert ingest([source], Settings(home=home)).ok
    return home


def run(args, home: Path, stdin: bytes = b"", **env) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "DUTY_CONFIG"}
    environment.update({"DUTY_HOME": str(home), "HF_HUB_OFFLINE": "1", **env})
    return subprocess.run(CLI + args, input=stdin, capture_output=True, env=environment, timeout=300)


# -- item 10: bytes that are not UTF-8 --------------------------------------------------------------


LINES = st.lists(
    st.binary(max_size=30) | st.sampled_from([b"\xff\xfe", b"\xe4\xb8", "殡葬".encode(), b"  ", b"\r"]),
    min_size=1,
    max_size=12,
)


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=LINES)
def test_ask_json_turns_any_bytes_into_one_valid_object_per_line(tiny_home, lines):
    stdin = b"\n".join(line.replace(b"\n", b"") for line in lines) + b"\n"
    result = run(["ask", "--json", "-"], tiny_home, stdin)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    expected = [(raw.strip().decode("utf-8", "replace"), _is_utf8(raw)) for raw in stdin.split(b"\n")]
    expected = [(text, valid) for text, valid in expected if text.strip()]
    out = result.stdout.decode("utf-8")  # strict: stdout is valid UTF-8
    records = [json.loads(line) for line in out.split("\n") if line]
    assert out.count("\n") == len(records) == len(expected)
    assert len(out.splitlines()) == len(records)  # no raw line separators inside a record
    for record, (text, valid) in zip(records, expected):
        assert record["question"] == text
        assert ("error" in record) != valid


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.slow
def test_an_undecodable_line_gets_an_error_object_and_the_stream_goes_on(tiny_home):
    result = run(["ask", "--json", "-"], tiny_home, b"\xff\xfe\n" + "殡葬改革归谁管".encode() + b"\n")
    first, second = (json.loads(line) for line in result.stdout.decode("utf-8").splitlines())
    assert first["question"] == "\ufffd\ufffd" and "UTF-8" in first["error"] and first["abstained"]
    assert second["citations"][0]["number"] == 1 and "error" not in second


@pytest.mark.slow
def test_ask_and_chat_with_undecodable_input_do_not_crash(tiny_home):
    result = run(["ask", b"\xff\xfe\xe5".decode("utf-8", "surrogateescape")], tiny_home)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert "UTF-8" in result.stderr.decode("utf-8")
    result = run(["ask", "--json", b"\xff".decode("utf-8", "surrogateescape")], tiny_home)
    assert json.loads(result.stdout.decode("utf-8"))["error"]
    result = run(["chat"], tiny_home, b"\xff\xfe\n" + "殡葬改革归谁管".encode() + b"\n")
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert "UTF-8" in result.stderr.decode("utf-8") and "殡葬改革" in result.stdout.decode("utf-8")


# -- item 11: document and user text printed as written ---------------------------------------------


@pytest.mark.slow
def test_markup_and_emoji_codes_in_items_print_as_written(tiny_home):
    shown = run(["show", "甲乡:basic:2"], tiny_home, COLUMNS="300")
    assert shown.returncode == 0, shown.stderr.decode()
    assert NASTY_TITLE in shown.stdout.decode("utf-8") and "[red]应急[/red]" in shown.stdout.decode("utf-8")
    asked = run(["ask", "甲乡基本履职事项第2项"], tiny_home, COLUMNS="300")
    assert asked.returncode == 0, asked.stderr.decode()
    output = asked.stdout.decode("utf-8")
    assert "私屠滥宰:100:" in output and "[/bold]" in output and "💯" not in output
    assert "\x1b]8;" not in output  # no terminal hyperlink
    missing = run(["show", "file:100:"], tiny_home)
    assert "file:100:" in missing.stderr.decode("utf-8") and "💯" not in missing.stderr.decode("utf-8")


# -- item 9: numbers, invisible characters, blank questions -----------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一万", 10_000),
        ("一千亿", 10**11),
        ("一万零一", 10_001),
        ("两千三百", 2_300),
        ("十二万三千四百五十六", 123_456),
        ("一亿二千万", 120_000_000),
        ("二十二", 22),
        ("一百零九", 109),
        ("万", None),
        ("²", None),
    ],
)
def test_chinese_numbers_keep_every_place_value(text, value):
    assert chinese_number(text) == value


@pytest.mark.parametrize("number", ["一万", "一千亿", "一万零一", "99999999999999999999"])
def test_a_number_no_list_has_is_reported_missing_not_read_as_another(assistant, number):
    answer = assistant.ask(f"二工镇配合履职事项第{number}项是什么？")
    assert answer.abstained and answer.citations == []
    assert "第1项" not in answer.text


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u00ad", "\u202e"])
def test_invisible_characters_do_not_change_the_answer(assistant, invisible):
    answer = assistant.ask(f"二工镇配合履职事项第2{invisible}2项{invisible}")
    assert [item.id for item in answer.citations] == ["二工镇:coordinated:22"]


@pytest.mark.parametrize("question", ["", "   ", "\u200b\ufeff", "\u3000\n"])
def test_blank_questions_are_refused(assistant, question):
    answer = assistant.ask(question)
    assert answer.abstained and answer.citations == [] and answer.text == EMPTY_QUESTION
    assert understand("", assistant.retriever.catalog).number is None


@pytest.mark.slow
def test_blank_question_at_the_command_line_is_refused(tiny_home):
    result = run(["ask", ""], tiny_home)
    assert result.returncode == 2 and "问题是空的" in result.stderr.decode("utf-8")
    record = json.loads(run(["ask", "--json", "\u200b"], tiny_home).stdout.decode("utf-8"))
    assert record["abstained"] and record["answer"] == EMPTY_QUESTION


# -- item 14: configuration errors name the file or variable and the field ---------------------------

COMMANDS = [
    ["ingest"],
    ["ui"],
    ["ask", "殡葬"],
    ["ask", "--json", "殡葬"],
    ["chat"],
    ["feedback", "export"],
    ["eval"],
    ["show", "甲乡:basic:1"],
    ["diff", "a.txt", "b.txt"],
]


def _bad_configs(tmp_path: Path) -> list[tuple[dict, str]]:
    broken = tmp_path / "broken.toml"
    broken.write_text("top_k = [\n", encoding="utf-8")
    typo = tmp_path / "typo.toml"
    typo.write_text("top_kk = 3\n", encoding="utf-8")
    nan = tmp_path / "nan.toml"
    nan.write_text("relative_cutoff = nan\n", encoding="utf-8")
    return [
        ({"DUTY_CONFIG": str(broken)}, f"{broken}: 不是有效的 TOML"),
        ({"DUTY_CONFIG": str(typo)}, "top_kk"),
        ({"DUTY_CONFIG": str(nan)}, f"{nan}: relative_cutoff"),
        ({"DUTY_CONFIG": str(tmp_path / "missing.toml")}, f"DUTY_CONFIG={tmp_path / 'missing.toml'}"),
        ({"DUTY_RELATIVE_CUTOFF": "nan"}, "DUTY_RELATIVE_CUTOFF"),
        ({"DUTY_DENSE_SHARE": "inf"}, "DUTY_DENSE_SHARE"),
        ({"DUTY_LLM_ENCODING": "bogus"}, "DUTY_LLM_ENCODING"),
        ({"DUTY_CORPUS": "not json"}, "DUTY_CORPUS"),
    ]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_names_the_bad_setting(tmp_path, monkeypatch, command):
    monkeypatch.setenv("DUTY_HOME", str(tmp_path / "home"))
    for env, named in _bad_configs(tmp_path):
        for name in ("DUTY_CONFIG", "DUTY_RELATIVE_CUTOFF", "DUTY_DENSE_SHARE", "DUTY_LLM_ENCODING", "DUTY_CORPUS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, command)
        output = "".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 2, (env, result.output)
        assert "配置有误" in output and "".join(named.split()) in output, (env, result.output)
        assert "无法打开索引" not in output and "Traceback" not in output
