"""The command line as users and other tools run it: real subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real documents, models or processes: not in the fast tier

CLI = [sys.executable, "-m", "ui.cli"]


def run(args, settings_home: Path, stdin: str = "", **env):
    environment = {**os.environ, "DUTY_HOME": str(settings_home), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(CLI + args, input=stdin, capture_output=True, text=True, env=environment, timeout=300)


def test_ask_json_stream_is_one_object_per_line(built_settings):
    questions = ["出具婚姻状况证明还归镇里吗？", "", "列出所有要配合县水利局的事项", "明天天气怎么样"]
    result = run(["ask", "--json", "-"], built_settings.home, stdin="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["question"] for r in records] == [q for q in questions if q]
    for record in records:
        assert set(record) >= {"question", "answer", "citations", "abstained"}
        for citation in record["citations"]:
            assert set(citation) == {"town", "county", "list", "number", "title"}
    assert records[0]["citations"][0]["list"] == "withdrawn" and not records[0]["abstained"]
    assert len(records[1]["citations"]) > 10
    assert records[2]["abstained"] and records[2]["citations"] == []


def test_pretty_ask_prints_answer_and_citation_table(built_settings):
    result = run(["ask", "二工镇配合履职事项第22项"], built_settings.home, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    assert "〔二工镇·配合履职·第22项〕" in result.stdout and "引用事项" in result.stdout


def test_ask_builds_the_index_on_first_use(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "甲乡.txt").write_text(
        "某某县甲乡\n履职事项清单\n某某县甲乡基本履职事项清单\n序号\t事项类别\t事项名称\n1\t民生服务\t负责本乡殡葬改革工作\n",
        encoding="utf-8",
    )
    result = run(["ask", "--json", "殡葬改革归谁管"], tmp_path / "home", DUTY_CORPUS=json.dumps([str(corpus)]))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["citations"][0]["town"] == "甲乡"
    assert (tmp_path / "home" / "index" / "CURRENT").exists()


def test_ingest_reports_bad_files_and_exits_nonzero(tmp_path):
    bad = tmp_path / "乙乡.txt"
    bad.write_text(
        "某某县乙乡\n履职事项清单\n某某县乙乡基本履职事项清单\n序号\t事项类别\t事项名称\n2\t民生服务\t编号错了\n",
        encoding="utf-8",
    )
    result = run(["ingest", str(bad)], tmp_path / "home")
    assert result.returncode == 1
    assert f"{bad}:5" in result.stderr and "out of order" in result.stderr
