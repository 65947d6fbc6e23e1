"""The second annotator's comparison sets: the agreement count and the shipped file's validity."""

from __future__ import annotations

import json
import re

import pytest

from assistant.ingest.parsing import parse_paths
from assistant.settings import CORPUS_DIR
from eval.agreement import agreement, cited_sets, load_sets, main
from eval.questions import load_questions


def test_agreement_counts_equal_sets_over_the_shared_questions():
    first = {"a": frozenset({"x", "y"}), "b": frozenset({"x"}), "c": frozenset()}
    second = {"a": frozenset({"y", "x"}), "b": frozenset({"x", "z"}), "d": frozenset()}
    assert agreement(first, second) == (1, 2)


def test_the_shipped_sets_are_dev_comparisons_with_ids_of_the_corpus():
    sets = load_sets()
    questions = {q.id: q for q in load_questions()}
    documents, _ = parse_paths([CORPUS_DIR])
    ids = {item.id for doc in documents for item in doc.items}
    assert len(sets) >= 80
    for qid, gold in sets.items():
        assert questions[qid].kind == "comparison" and questions[qid].split == "dev", qid
        assert gold <= ids, qid


def test_a_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "second.jsonl"
    path.write_text('{"id": "a", "gold": []}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"second\.jsonl:2: KeyError"):
        load_sets(path)


def test_main_compares_a_report_with_both_annotators(tmp_path, capsys):
    sets = load_sets()
    qid, gold = next(iter(sets.items()))
    report = tmp_path / "report.json"
    results = [{"id": qid, "cited": sorted(gold)}, {"id": "not-compared", "cited": []}]
    report.write_text(json.dumps({"results": {"ours": results}}), encoding="utf-8")
    assert cited_sets(report)[qid] == gold
    assert main([str(report)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"second annotator = bank: \d+ of {len(sets)} \(\d\.\d\d\)", lines[0])
    assert lines[2] == "assistant = second: 1 of 1 (1.00)"
