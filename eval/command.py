"""`duty-assistant eval`: run, print the per-kind table, write reports, compare, gate.

Exit codes: 0 done, 1 a regression beyond the tolerance or a missed `--fail-under`,
2 bad arguments or nothing to evaluate with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.settings import Settings
from eval.baselines import BASELINES, make_baseline
from eval.gate import DEFAULT_TOLERANCE, Change, changes, parse_bounds, reference_summary, regressions, unmet
from eval.metrics import HEADLINE, METRICS, lookup
from eval.questions import QUESTIONS_FILE, QuestionError, load_questions
from eval.report import baseline_record, load_reference, previous_run, report_record, scopes, stamp, write_report
from eval.runner import GENERATORS, AssistantSystem, evaluate

# What fits an 80-column terminal; the Markdown report has every metric.
TABLE_METRICS = (
    "score",
    "mrr",
    "citation_hit",
    "citation_precision",
    "set_f1",
    "abstention_recall",
    "false_abstention",
    "latency_p95",
)


@dataclass
class Options:
    split: str = "test"
    generator: str = "extractive"
    baselines: Sequence[str] = ()
    compare: bool = False
    against: Path | None = None
    tolerance: float | None = None
    fail_under: Sequence[str] = ()
    reports_dir: Path | None = None
    save_baseline: Path | None = None
    questions: Path = QUESTIONS_FILE
    settings: Settings = field(default_factory=Settings)


def run(options: Options, out: Console, err: Console) -> int:
    from assistant.service import Assistant

    settings = options.settings
    folder = options.reports_dir or settings.reports_dir
    try:
        bounds = parse_bounds(list(options.fail_under))
        baselines = _baseline_names(options.baselines)
        if options.generator not in GENERATORS:
            raise ValueError(f"未知的生成方式 {options.generator!r}，可选：{'、'.join(GENERATORS)}")
        if options.generator == "llm" and not settings.llm_base_url:
            raise ValueError("--generator llm 需要配置大模型服务（DUTY_LLM_BASE_URL）")
        questions = load_questions(options.questions, options.split)
        reference = load_reference(options.against) if options.against else None
    except (ValueError, QuestionError) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    if not questions:
        err.print(f"[red]{escape(str(options.questions))} 中没有 {escape(options.split)} 问题[/red]")
        return 2
    previous = previous_run(folder, options.split, options.generator)
    if reference is None and (options.compare or options.tolerance is not None):
        reference = previous
    try:
        assistant = Assistant.open(settings)
    except Exception as exc:
        err.print(f"[red]无法打开索引：{escape(str(exc))}[/red]")
        return 2
    systems = [AssistantSystem(assistant, options.generator)]
    try:
        for name in baselines:
            err.print(f"准备基线 {name}…")
            systems.append(make_baseline(name, assistant.kb, settings))
    except ValueError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 2

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("评测", total=len(questions) * len(systems))
        result = evaluate(
            systems,
            questions,
            split=options.split,
            generator=options.generator,
            progress=lambda name, done, total: bar.update(task, advance=1, description=f"评测 {name}"),
        )
    stamp(result, settings, assistant.kb)
    files = write_report(result, folder, previous)
    ours = result.summaries["ours"]
    out.print(kinds_table(ours, f"ours · {options.split} · {options.generator} · {len(questions)} 题"))
    if len(result.summaries) > 1:
        out.print(systems_table(result.summaries))
    err.print(f"报告：{files.json}\n      {files.markdown}\n      {files.chart}")

    code = _compare(ours, reference, options, out, err)
    for bound in unmet(ours, bounds):
        actual = lookup(ours, bound.key)
        err.print(f"[red]未达标：{bound.key} = {_fmt(actual, 4)}，要求 {bound.sign} {bound.value}[/red]")
        code = 1
    if options.save_baseline:
        tolerance = DEFAULT_TOLERANCE if options.tolerance is None else options.tolerance
        record = baseline_record(report_record(result), tolerance)
        options.save_baseline.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        err.print(f"参照基准已写入 {options.save_baseline}")
    return code


def _compare(ours: dict, reference: dict | None, options: Options, out: Console, err: Console) -> int:
    """Print the change against the reference; 1 when the gate is on and something regressed."""
    gate_on = options.tolerance is not None
    if reference is None:
        if options.compare or gate_on:
            err.print("[yellow]没有可比较的上一次评测（同一数据划分和生成方式）[/yellow]")
        return 0
    before = reference_summary(reference)
    if before is None:
        err.print("[yellow]参照报告中没有 ours 的结果，无法比较[/yellow]")
        return 0
    out.print(changes_table(changes(ours, before), reference))
    worse = regressions(ours, before, options.tolerance) if gate_on else []
    for change in worse:
        err.print(
            f"[red]退步：{change.key} {_fmt(change.before)} → {_fmt(change.after)}（容差 {options.tolerance}）[/red]"
        )
    return 1 if worse else 0


def _baseline_names(names: Sequence[str]) -> list[str]:
    wanted = list(BASELINES) if "all" in names else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in BASELINES]
    if unknown:
        raise ValueError(f"未知的基线 {'、'.join(unknown)}，可选：{'、'.join(BASELINES)}、all")
    return wanted


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


LABELS = {m.key: m.label for m in METRICS}


def kinds_table(summary: dict, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for header in ("kind", "n", *(LABELS[k] for k in TABLE_METRICS)):
        table.add_column(header, justify="left" if header == "kind" else "right")
    for scope, figures in scopes(summary):
        style = "bold" if scope in ("single_item", "overall") else None
        table.add_row(scope, str(figures["n"]), *(_fmt(figures.get(k)) for k in TABLE_METRICS), style=style)
    return table


def systems_table(summaries: dict[str, dict]) -> Table:
    """Score per kind for each system, then the overall headline figures."""
    table = Table("", *summaries, title="与基线对比", box=box.SIMPLE_HEAD)
    ours = summaries["ours"]
    for scope, _ in scopes(ours):
        table.add_row(scope, *(_fmt(dict(scopes(s)).get(scope, {}).get("score")) for s in summaries.values()))
    for key in (*HEADLINE[1:], "latency_p50", "latency_p95"):
        table.add_row(
            f"overall {LABELS[key]}".replace("\n", " "),
            *(_fmt(s["overall"].get(key)) for s in summaries.values()),
            style="dim",
        )
    return table


def changes_table(found: list[Change], reference: dict) -> Table:
    title = f"与参照对比：{reference.get('timestamp', '')} · commit {reference.get('commit', '')}"
    table = Table("figure", "before", "now", "Δ", title=title, box=box.SIMPLE_HEAD)
    for change in found:
        gain = change.gain
        style = None if gain is None or abs(gain) < 1e-9 else ("green" if gain > 0 else "red")
        delta = "–" if change.delta is None else f"{change.delta:+.3f}"
        table.add_row(change.key, _fmt(change.before), _fmt(change.after), delta, style=style)
    return table
