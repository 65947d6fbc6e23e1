"""Eval reports on disk: a JSON with every question's result, a Markdown summary, a PNG
chart, and `history.jsonl` with one summary line per run.

The UI reads reports through `latest_report(folder)` and `history(folder)`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant import jsonl
from assistant.index import KnowledgeBase
from assistant.settings import Settings
from eval.gate import TARGETS, changes, reference_summary
from eval.metrics import HEADLINE, METRICS, Scored, lookup
from eval.questions import KINDS
from eval.runner import EvalRun

FORMAT = 1
HISTORY = "history.jsonl"
TEXT_KEPT = 1500  # characters of each answer kept in the JSON report
RANKING_KEPT = 10
SECRETS = {"llm_api_key", "chroma_token"}


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    chart: Path


def git_commit(folder: Path = Path(__file__).parent) -> str:
    """Short commit hash, '+dirty' with uncommitted changes; 'unknown' outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def stamp(run: EvalRun, settings: Settings, kb: KnowledgeBase) -> EvalRun:
    """Record what produced the run: commit, settings (without secrets) and index."""
    run.commit = git_commit()
    run.settings = settings.model_dump(mode="json", exclude=SECRETS)
    run.index = {
        "generation": kb.folder.name,
        "embedder": kb.manifest.get("embedder"),
        "built": kb.manifest.get("built"),
        "items": len(kb.items),
    }
    return run


def result_record(result: Scored) -> dict:
    outcome = result.outcome
    record = {
        **result.question.to_dict(),
        "status": outcome.status,
        "cited": outcome.cited,
        "ranking": outcome.ranking[:RANKING_KEPT],
        "abstained": outcome.abstained,
        "seconds": round(outcome.seconds, 4),
        "scores": {k: round(v, 4) for k, v in result.scores.items()},
        "answer": outcome.text[:TEXT_KEPT],
    }
    if outcome.error:
        record["error"] = outcome.error
    return record


def report_record(run: EvalRun) -> dict:
    """The JSON report: when, what, with which settings, summaries and every result."""
    return {
        "format": FORMAT,
        "timestamp": run.timestamp,
        "commit": run.commit,
        "split": run.split,
        "generator": run.generator,
        "questions": len(next(iter(run.results.values()), [])),
        "seconds": round(run.seconds, 2),
        "index": run.index,
        "settings": run.settings,
        "systems": run.summaries,
        "results": {name: [result_record(r) for r in results] for name, results in run.results.items()},
    }


def history_entry(report: dict, name: str) -> dict:
    """A report without its per-question results: one line of history.jsonl."""
    entry = {k: v for k, v in report.items() if k not in ("results", "settings")}
    entry["report"] = name
    return entry


def write_report(run: EvalRun, folder: Path, previous: dict | None = None) -> ReportFiles:
    """Write the three report files and append the run to the history."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(folder, f"eval-{run.timestamp.replace(':', '').replace('-', '')[:15]}-{run.split}")
    report = report_record(run)
    files = ReportFiles(folder / f"{stem}.json", folder / f"{stem}.md", folder / f"{stem}.png")
    jsonl.write_atomic(files.json, json.dumps(report, ensure_ascii=False, indent=1))
    jsonl.write_atomic(files.markdown, markdown(report, previous))
    chart(report, previous, files.chart)
    jsonl.append(folder / HISTORY, [history_entry(report, files.json.name)])
    return files


def _free_stem(folder: Path, stem: str) -> str:
    candidate, n = stem, 1
    while (folder / f"{candidate}.json").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


# -- reading -------------------------------------------------------------------------------


def history(folder: Path) -> list[dict]:
    """Every run's summary, oldest first (lines that do not parse are skipped)."""
    path = Path(folder) / HISTORY
    if not path.exists():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [entry for _, entry in jsonl.parse(text, path, errors=[])]


def latest_report(folder: Path) -> dict | None:
    """The newest full report (with per-question results), or None before the first run."""
    for entry in reversed(history(folder)):
        path = Path(folder) / entry.get("report", "")
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def previous_run(folder: Path, split: str, generator: str) -> dict | None:
    """The last history entry comparable with a run on this split and generator."""
    for entry in reversed(history(folder)):
        if entry.get("split") == split and entry.get("generator") == generator:
            return entry
    return None


def load_reference(path: Path) -> dict:
    """A saved report, history entry or baseline file: anything with {"systems": {name: summary}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a reference ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("systems"), dict):
        raise ValueError(f"{path}: not an eval report or baseline (no 'systems')")
    return data


def baseline_record(report: dict, tolerance: float, system: str = "ours") -> dict:
    """What eval/baseline.json holds: one system's summary and the tolerance the gate allows."""
    keep = ("timestamp", "commit", "split", "generator", "questions")
    return {**{k: report[k] for k in keep}, "tolerance": tolerance, "systems": {system: report["systems"][system]}}


# -- Markdown ------------------------------------------------------------------------------


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines


def scopes(summary: dict) -> list[tuple[str, dict]]:
    """Per-kind rows in the kind order, the single-item group, its overlap bands, and overall."""
    rows = [(k, summary["kinds"][k]) for k in KINDS if k in summary["kinds"]]
    rows.append(("single_item", summary["single_item"]))
    rows += [(f"band:{b}", figures) for b, figures in summary.get("bands", {}).items()]
    return rows + [("overall", summary["overall"])]


def markdown(report: dict, previous: dict | None = None) -> str:
    systems = report["systems"]
    ours = systems.get("ours") or next(iter(systems.values()))
    lines = [
        f"# 评测报告 · {report['split']} · {report['generator']}",
        "",
        f"- time: {report['timestamp']}",
        f"- commit: {report['commit']}",
        f"- questions: {report['questions']} ({report['split']} split), systems: {', '.join(systems)}",
        f"- index: {json.dumps(report.get('index', {}), ensure_ascii=False)}",
        f"- run time: {report['seconds']} s",
        "",
        "## Targets (ours)",
        "",
    ]
    target_rows = []
    for bound in TARGETS:
        met = bound.met(ours)
        target_rows.append(
            (
                bound.key,
                lookup(ours, bound.key),
                f"{bound.sign} {bound.value}",
                "–" if met is None else ("yes" if met else "**no**"),
            )
        )
    lines += _table(("figure", "value", "target", "met"), target_rows)
    for name, summary in systems.items():
        lines += ["", f"## {name}: per kind", ""]
        header = ("kind", "n", *(m.label.replace("\n", " ") for m in METRICS))
        rows = [(scope, s["n"], *(s.get(m.key) for m in METRICS)) for scope, s in scopes(summary)]
        lines += _table(header, rows)
        if summary["overall"].get("errors"):
            lines.append(f"\n{summary['overall']['errors']} question(s) failed with an error (scored as wrong).")
    if len(systems) > 1:
        lines += ["", "## Systems compared (score per kind; headline figures overall)", ""]
        rows = [
            (scope, *(dict(scopes(s)).get(scope, {}).get("score") for s in systems.values()))
            for scope, _ in scopes(ours)
        ]
        rows += [(f"overall {key}", *(s["overall"].get(key) for s in systems.values())) for key in HEADLINE[1:]]
        rows += [
            (f"overall {key}", *(s["overall"].get(key) for s in systems.values()))
            for key in ("latency_p50", "latency_p95")
        ]
        lines += _table(("", *systems), rows)
    lines += ["", "## Change vs previous run", ""]
    before = reference_summary(previous or {})
    if before is None:
        lines.append("No previous run to compare with.")
    else:
        lines.append(f"Previous: {previous.get('timestamp')} (commit {previous.get('commit')}).\n")
        rows = [
            (c.key, c.before, c.after, "–" if c.delta is None else f"{c.delta:+.3f}")
            for c in changes(ours, before, HEADLINE)
        ]
        lines += _table(("figure", "before", "now", "Δ"), rows)
    failures = [r for r in report["results"].get("ours", []) if r["status"] != "ok" or r["scores"].get("score", 1) < 1]
    lines += ["", f"## Questions ours did not fully get ({len(failures)})", ""]
    lines += [failure_line(r) for r in failures]
    lines += ["", "## Settings", "", "```json", json.dumps(report["settings"], ensure_ascii=False, indent=1), "```", ""]
    return "\n".join(lines)


def _ids(ids: Sequence[str], shown: int = 8) -> str:
    return (", ".join(ids[:shown]) + (" …" if len(ids) > shown else "")) if ids else "∅"


def failure_line(record: dict) -> str:
    """One question a system did not fully get, with what it should have cited and what it did."""
    count = "" if record.get("count") is None else f" (count {record['count']})"
    line = (
        f"- {record['id']} [{record['kind']}] {record['question']} — score {_fmt(record['scores'].get('score'))}; "
        f"gold {_ids(record['gold'])}{count}; cited {_ids(record['cited'])}"
    )
    if record["abstained"]:
        line += "; abstained"
    if record["status"] != "ok":
        line += f"; {record['status']}: {record.get('error', '')}"
    return line


# -- chart ---------------------------------------------------------------------------------


def chart(report: dict, previous: dict | None, path: Path) -> None:
    """Grouped bars: per kind, each system's score this run, and ours in the previous run."""
    from matplotlib.figure import Figure  # Agg canvas, no GUI backend or global state

    systems = report["systems"]
    ours = systems.get("ours") or next(iter(systems.values()))
    labels = [scope for scope, _ in scopes(ours)]
    series = []
    before = reference_summary(previous or {})
    if before is not None:
        series.append((f"ours (previous, {previous.get('commit', '')})", before, "#b0b0b0"))
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    series += [(name, s, palette[i % len(palette)]) for i, (name, s) in enumerate(systems.items())]
    figure = Figure(figsize=(max(8.0, 1.1 * len(labels)), 4.5), dpi=100)
    axes = figure.subplots()
    width = 0.8 / len(series)
    for i, (name, summary, color) in enumerate(series):
        values = [dict(scopes(summary)).get(scope, {}).get("score") for scope in labels]
        positions = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        axes.bar(positions, [v or 0.0 for v in values], width, label=name, color=color)
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_ylim(0, 1.18)
    axes.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes.set_ylabel("score")
    axes.set_title(f"eval {report['split']} · {report['generator']} · {report['timestamp']} · {report['commit']}")
    axes.legend(fontsize=8, loc="upper center", ncols=len(series), frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
