"""The eval suite: question schema and checker, metrics, baselines, reports, the CLI."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from openai_stub import OpenAIStub, Reply, markers
from typer.testing import CliRunner

from assistant.answering.answer import Answer
from assistant.ingest.parsing import parse_paths
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings
from eval import check
from eval.baselines import NaiveRag, OneSignalRetriever, RetrieverSystem, row_spans, rows_in
from eval.gate import Bound, parse_bounds, regressions, unmet
from eval.metrics import Outcome, Scored, aggregate, lookup, score, summarize
from eval.questions import Question, QuestionError, load_questions
from eval.report import history, latest_report, load_reference, previous_run, write_report
from eval.runner import AssistantSystem, evaluate, run_system
from ui.cli import app


def q(kind="single", gold=("a",), match="any", **more) -> Question:
    return Question(
        id=more.pop("id", "x1"), split="dev", kind=kind, question="问？", gold=tuple(gold), match=match, **more
    )


# -- question set ------------------------------------------------------------------------------


def test_the_bank_measures_generalisation():
    questions = load_questions()
    kinds = Counter(q.kind for q in questions)
    assert len(questions) >= 1000 and set(Counter(q.split for q in questions)) == {"train", "dev", "test"}
    assert len(kinds) == 10 and kinds["trap"] >= 80 and kinds["comparison"] >= 40 and kinds["follow_up"] >= 40
    classes = Counter(q.oos for q in questions if q.kind == "out_of_scope")
    assert min(classes["figure"], classes["place"], classes["service"]) >= 50
    single = sorted(q.overlap for q in questions if q.band is not None and q.kind != "trap")
    assert single[len(single) // 2] < 0.15, "single-item questions should mostly avoid the items' own words"
    assert all(q.split == "test" for q in load_questions(split="test"))


def test_the_original_questions_keep_their_splits():
    original = [q for q in load_questions() if q.id.startswith("q")]
    assert len(original) == 267 and Counter(q.split for q in original) == {"dev": 120, "test": 147}


def test_every_shipped_duty_has_a_situation_question_in_the_bank():
    duties = {q.duty for q in load_questions() if q.duty and q.kind in ("single", "withdrawn", "department")}
    assert len(duties) >= 260


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"id": "q1", "split": "dev", "kind": "single", "question": "问", "gold": ["a"], "match": "any"}',
            "facts: missing",
        ),
        (
            '{"id": "q1", "split": "val", "kind": "single", "question": "问", "gold": ["a"], "match": "any", "facts": []}',
            "split: 'val'",
        ),
        (
            '{"id": "q1", "split": "dev", "kind": "count", "question": "问", "gold": [], "match": "all", "facts": []}',
            "count: missing",
        ),
        (
            '{"id": "q1", "split": "dev", "kind": "out_of_scope", "question": "问", "gold": ["a"], "match": "any", "facts": []}',
            "gold: must be empty",
        ),
        (
            '{"id": "q1", "split": "dev", "kind": "single", "question": "问", "gold": "a", "match": "any", "facts": []}',
            "gold: expected list",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_malformed_line_names_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n" + line + "\n", encoding="utf-8")
    with pytest.raises(QuestionError) as error:
        load_questions(path)
    assert str(error.value).startswith(f"{path}:2: ") and message in str(error.value)


def test_every_gold_id_fact_and_count_agrees_with_the_parsed_corpus():
    documents, errors = parse_paths([CORPUS_DIR])
    assert not errors
    items = [item for doc in documents for item in doc.items]
    assert check.problems(load_questions(), items) == []
    assert check.main([]) == 0


def test_checker_reports_unknown_ids_missing_facts_and_wrong_counts(items):
    real = items[0]
    bad = [
        q(gold=["二工镇:basic:999"], id="x1"),
        q(gold=[real.id], facts=("不存在的事实",), id="x2"),
        q(kind="count", gold=[real.id], match="all", count=2, id="x3"),
    ]
    found = check.problems(bad, items)
    assert any(p.startswith("x1: gold ids not in the corpus: 二工镇:basic:999") for p in found)
    assert any(p.startswith("x2: fact '不存在的事实'") for p in found)
    assert any(p.startswith("x3: count 2 but 1 gold ids") for p in found)


# -- metrics -----------------------------------------------------------------------------------


def test_set_metrics_count_overlap_against_the_gold_set():
    scores = score(q("enumeration", gold=("a", "b", "c"), match="all"), Outcome(cited=["a", "b", "d"]))
    assert scores["set_recall"] == pytest.approx(2 / 3) and scores["set_precision"] == pytest.approx(2 / 3)
    assert scores["set_f1"] == pytest.approx(2 / 3) and scores["exact_set"] == 0.0
    assert scores["citation_hit"] == 1.0 and scores["score"] == pytest.approx(2 / 3)
    assert "mrr" not in scores and "abstention_recall" not in scores


def test_ranking_metrics_use_the_first_gold_rank():
    scores = score(q(gold=("c", "z")), Outcome(cited=["a"], ranking=["a", "b", "c", "d"]))
    assert scores["hit@1"] == 0.0 and scores["hit@5"] == 1.0 and scores["mrr"] == pytest.approx(1 / 3)
    assert scores["citation_hit"] == 0.0 and scores["citation_precision"] == 0.0
    assert score(q(gold=("z",)), Outcome(ranking=["a"] * 10))["mrr"] == 0.0


def test_abstention_precision_count_and_facts():
    out_of_scope = q("out_of_scope", gold=())
    assert score(out_of_scope, Outcome(abstained=True)) == {"abstention_recall": 1.0, "score": 1.0}
    abstained = score(q(gold=("a",)), Outcome(abstained=True))
    assert abstained["false_abstention"] == 1.0 and "citation_precision" not in abstained
    counted = score(q("count", gold=(), match="all", count=3), Outcome(cited=["a", "b", "c"]))
    assert counted["count_accuracy"] == 1.0 and counted["score"] == 1.0 and "set_f1" not in counted
    facts = score(q(facts=("民政局", "派出所")), Outcome(cited=["a"], text="由县民政局负责"))
    assert facts["fact_coverage"] == 0.5


def test_aggregates_skip_metrics_that_do_not_apply():
    answered, missed = q(id="1"), q("out_of_scope", gold=(), id="2")
    outcomes = [Outcome(cited=["a"], ranking=["a"], seconds=0.1), Outcome(abstained=False, seconds=0.3)]
    results = [Scored(question, o, score(question, o)) for question, o in zip((answered, missed), outcomes)]
    overall = aggregate(results)
    assert overall["n"] == 2 and overall["citation_hit"] == 1.0 and overall["abstention_recall"] == 0.0
    assert overall["set_f1"] is None and overall["score"] == 0.5 and overall["latency_p95"] == pytest.approx(0.29)
    summary = summarize(results)
    assert set(summary["kinds"]) == {"single", "out_of_scope"} and summary["single_item"]["n"] == 1
    assert lookup(summary, "out_of_scope.abstention_recall") == 0.0 and lookup(summary, "single_item.mrr") == 1.0
    with pytest.raises(KeyError):
        lookup(summary, "nonsense")


# -- gate ----------------------------------------------------------------------------------------


def _summary(**overall):
    return {"overall": overall, "single_item": {}, "kinds": {}}


def test_regressions_respect_tolerance_and_direction():
    before = _summary(citation_hit=0.95, false_abstention=0.02, set_f1=1.0)
    assert regressions(_summary(citation_hit=0.94, false_abstention=0.03, set_f1=1.0), before, 0.02) == []
    worse = regressions(_summary(citation_hit=0.90, false_abstention=0.06, set_f1=None), before, 0.02)
    assert {c.key for c in worse} == {"citation_hit", "false_abstention", "set_f1"}


def test_floors_parse_and_judge():
    bounds = parse_bounds(["citation_hit=0.9", "false_abstention=0.05", "enumeration.set_f1=1"])
    assert [b.key for b in unmet(_summary(citation_hit=0.95, false_abstention=0.1), bounds)] == [
        "false_abstention",
        "enumeration.set_f1",
    ]
    assert Bound("citation_hit", 0.9).sign == ">=" and Bound("false_abstention", 0.1).sign == "<="
    for spec in ("citation_hit", "bogus=1", "citation_hit=high"):
        with pytest.raises(ValueError):
            parse_bounds([spec])


# -- baselines -----------------------------------------------------------------------------------


def test_raw_rows_map_to_the_items_the_parser_found(assistant):
    for path in sorted(CORPUS_DIR.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        spans = row_spans(text, assistant.kb.towns)
        ids = [s.item_id for s in spans]
        town_items = [i for i in assistant.kb.items if i.source.endswith(path.name)]
        assert sorted(ids) == sorted(i.id for i in town_items)
        for span in spans:
            assert assistant.kb.by_id[span.item_id].title[:10] in text[span.start : span.end]
        left, right = next((a, b) for a, b in zip(spans, spans[1:]) if a.end == b.start)
        assert rows_in(spans, left.start + 1, left.end - 1) == [left.item_id]
        assert rows_in(spans, left.end - 1, left.end + 1) == [left.item_id, right.item_id]


@pytest.mark.parametrize("signal", ["keyword", "dense"])
def test_one_signal_baselines_have_no_set_handling(assistant, signal):
    retriever = OneSignalRetriever(assistant.kb, signal, assistant.settings)
    single = retriever.retrieve("二工镇现在还能给村民开婚姻状况证明吗？")
    assert [i.id for i in single.cited] == ["二工镇:withdrawn:1"]
    other = "dense" if signal == "keyword" else "keyword"
    assert all(getattr(h, other) == 0.0 and getattr(h, signal) != 0.0 for h in single.hits)
    listing = RetrieverSystem(signal, retriever).answer("列出二工镇所有应急管理及消防类的基本履职事项")
    assert len(listing.citations) == 1 and listing.generator == signal
    both = retriever.retrieve("出具婚姻状况证明还归镇里吗？")
    assert sorted(i.town for i in both.cited) == sorted(assistant.kb.towns)


def test_naive_rag_cites_the_rows_of_its_top_chunks(assistant, tmp_path, monkeypatch):
    lines = (CORPUS_DIR / "二工镇.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "part.txt").write_text("\n".join(lines[:40]), encoding="utf-8")  # the start of the basic list
    settings = Settings(home=tmp_path, corpus=[tmp_path / "part.txt"])
    rag = NaiveRag(assistant.kb, settings)
    answer = rag.answer("乡镇怎么做干部教育培养选拔考核？")
    assert not answer.abstained and answer.citations
    assert "二工镇:basic:7" in [i.id for i in answer.citations]
    assert all(i.town == "二工镇" and i.list.value == "basic" for i in answer.citations)
    assert any(i.title[:10] in answer.text for i in answer.citations)
    assert len(list(settings.cache_dir.glob("naive-rag-*.json"))) == 1

    def no_embedding(*args, **kwargs):
        raise AssertionError("the cached chunk vectors should have been used")

    monkeypatch.setattr(assistant.kb.embedder, "embed_documents", no_embedding)
    assert NaiveRag(assistant.kb, settings).chunks == rag.chunks


# -- runner and reports --------------------------------------------------------------------------


class Recorder:
    """A system that records what it was asked and fails on request."""

    name = "recorder"

    def __init__(self):
        self.calls = []

    def answer(self, question, history=()):
        self.calls.append((question, [q for q, _ in history]))
        if "boom" in question:
            raise RuntimeError("boom")
        return Answer(question, "答", abstained=True)


def test_runner_asks_history_first_and_scores_failures_as_wrong():
    system = Recorder()
    questions = [
        Question("f1", "dev", "follow_up", "那半截沟镇呢？", ("a",), history=("二工镇私屠滥宰归谁管？",)),
        Question("o1", "dev", "out_of_scope", "boom", ()),
    ]
    results = run_system(system, questions)
    assert system.calls[:2] == [("二工镇私屠滥宰归谁管？", []), ("那半截沟镇呢？", ["二工镇私屠滥宰归谁管？"])]
    assert results[1].outcome.status == "error" and "boom" in results[1].outcome.error
    assert results[1].scores["abstention_recall"] == 0.0  # an error is not an abstention


def test_generator_choice_decides_whether_the_model_is_asked(assistant):
    questions = [q for q in load_questions(split="dev") if q.kind == "single"][:3]
    with OpenAIStub() as stub:
        stub.fallback = lambda request: Reply(f"依据清单{markers(request)[0]}办理。")
        settings = assistant.settings.model_copy(
            update={"llm_base_url": stub.url, "llm_model": stub.model, "llm_max_retries": 0}
        )
        configured = Assistant(assistant.kb, settings)
        extractive = run_system(AssistantSystem(configured, "extractive"), questions)
        assert stub.requests == [] and all(r.outcome.status == "ok" for r in extractive)
        with_llm = run_system(AssistantSystem(configured, "llm"), questions)
    assert len(stub.requests) == len(questions)
    assert all(r.outcome.status == "ok" and "依据清单" in r.outcome.text and r.outcome.cited for r in with_llm)


def dev_sample():
    """Every tenth dev question: the report's plumbing does not need all of them."""
    return load_questions(split="dev")[::10]


@pytest.fixture(scope="module")
def dev_run(assistant):
    return evaluate([AssistantSystem(assistant)], dev_sample(), split="dev")


def test_reports_are_written_and_readable(dev_run, tmp_path):
    assert latest_report(tmp_path) is None and history(tmp_path) == []
    first = write_report(dev_run, tmp_path)
    assert first.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first.chart.stat().st_size > 10_000
    report = json.loads(first.json.read_text(encoding="utf-8"))
    dev = len(dev_sample())
    assert len(report["results"]["ours"]) == dev and report["systems"]["ours"]["overall"]["n"] == dev
    assert {"timestamp", "commit", "settings", "index"} <= set(report)
    second = write_report(dev_run, tmp_path, previous=previous_run(tmp_path, "dev", "extractive"))
    assert second.json != first.json
    assert [e["report"] for e in history(tmp_path)] == [first.json.name, second.json.name]
    assert latest_report(tmp_path)["timestamp"] == dev_run.timestamp
    markdown = second.markdown.read_text(encoding="utf-8")
    assert "Change vs previous run" in markdown and "No previous run" not in markdown
    assert previous_run(tmp_path, "test", "extractive") is None
    assert load_reference(first.json)["systems"]["ours"] == report["systems"]["ours"]
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        load_reference(tmp_path / "bad.json")


def test_eval_command_writes_reports_compares_and_gates(built_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("DUTY_HOME", str(built_settings.home))
    monkeypatch.setenv("DUTY_REPORTS_DIR", str(tmp_path))
    dev = load_questions(split="dev")
    by_kind = [[q for q in dev if q.kind == kind] for kind in ("single", "number", "out_of_scope", "follow_up")]
    sample = [q for questions in by_kind for q in questions[:: max(1, len(questions) // 25)]]  # ~25 of each kind
    questions = tmp_path / "sample.jsonl"
    questions.write_text("".join(json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in sample), encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["eval", "--split", "dev", "--questions", str(questions), "--baseline", "keyword"])
    assert first.exit_code == 0, first.output
    assert "out_of_scope" in first.output and "overall" in first.output and "keyword" in first.output
    assert len(list(tmp_path.glob("eval-*-dev.json"))) == 1 and len(list(tmp_path.glob("eval-*-dev.png"))) == 1
    baseline = tmp_path / "baseline.json"
    gated = runner.invoke(
        app,
        [
            "eval",
            "--split",
            "dev",
            "--questions",
            str(questions),
            "--compare",
            "--tolerance",
            "0",
            "--fail-under",
            "citation_hit=1.01",
            "--save-baseline",
            str(baseline),
        ],
    )
    assert gated.exit_code == 1  # the floor is unreachable; the comparison itself is clean
    assert "citation_hit" in gated.output and "退步" not in gated.output
    assert json.loads(baseline.read_text(encoding="utf-8"))["systems"]["ours"]["overall"]["n"] == len(sample)
    assert len(history(tmp_path)) == 2
    assert runner.invoke(app, ["eval", "--baseline", "bogus"]).exit_code == 2
    assert runner.invoke(app, ["eval", "--against", str(tmp_path / "missing.json")]).exit_code == 2
