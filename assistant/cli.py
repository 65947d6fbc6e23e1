"""`duty-assistant`: the command line. Side effects (terminal, files, exit codes) live here.

Logs go to stderr; `ask --json -` writes exactly one JSON object per input line to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.answer import Answer
from assistant.settings import Settings

app = typer.Typer(help="履职助手：依据乡镇履职事项清单回答问题，并注明出处。", no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("bm25s", "chromadb", "httpx"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
def ingest(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders; default: the shipped lists.")] = None,
    replace: Annotated[bool, typer.Option(help="Make the index hold exactly these documents.")] = False,
) -> None:
    """Parse duty lists and bring the index up to date (only new or changed items are embedded)."""
    from assistant.index import IngestLocked, ingest as run_ingest

    settings = Settings()
    with Progress(TextColumn("嵌入事项"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("embed", total=None)
        try:
            report = run_ingest(
                paths or settings.corpus, settings, replace=replace,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except IngestLocked as exc:
            err.print(f"[red]无法导入：{exc}[/red]")
            raise typer.Exit(3) from None
    for error in report.errors:
        err.print(f"[red]未导入 {error}[/red]")
    err.print(
        f"导入完成：新增 {report.added}，更新 {report.changed}，删除 {report.removed}，未变 {report.unchanged}；"
        f"嵌入 {report.embedded} 项，用时 {report.seconds:.1f} 秒。索引版本 {report.generation or '未改变'}"
    )
    if report.errors:
        raise typer.Exit(1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="问题；with --json, '-' reads one question per stdin line.")],
    json_output: Annotated[bool, typer.Option("--json", help="Machine interface: one JSON object per line.")] = False,
    town: Annotated[Optional[list[str]], typer.Option("--town", help="Only these townships.")] = None,
    list_kind: Annotated[Optional[list[str]], typer.Option("--list", help="basic / coordinated / withdrawn")] = None,
) -> None:
    """Answer a question from the duty lists, citing the items."""
    from assistant.service import Assistant

    assistant = _open_assistant()
    filters = {"towns": town or (), "lists": list_kind or ()}
    if json_output:
        questions = (line.strip() for line in sys.stdin) if question == "-" else iter([question])
        for line in questions:
            if not line:
                continue
            try:
                answer = assistant.ask(line, **filters)
                record = answer.to_json()
            except Exception as exc:  # one bad question must not end the stream
                logging.getLogger(__name__).exception("failed on %r", line)
                record = {"question": line, "answer": "", "citations": [], "abstained": True, "error": str(exc)}
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        return
    print_answer(assistant.ask(question, **filters))


def _open_assistant():
    from assistant.service import Assistant

    try:
        return Assistant.open(Settings())
    except Exception as exc:
        err.print(f"[red]无法打开索引：{exc}[/red]")
        raise typer.Exit(2) from None


def print_answer(answer: Answer) -> None:
    out.print(answer.text)
    for note in answer.notes:
        out.print(f"[yellow]注：{note}[/yellow]")
    if answer.citations:
        table = Table("乡镇", "清单", "序号", "事项类别", "事项名称", title=f"引用事项（{len(answer.citations)}项）")
        for item in answer.citations:
            table.add_row(item.town, item.list.short, str(item.number), item.category, item.title)
        out.print(table)
    elif answer.related:
        out.print("相关事项（仅供参考，未作为依据）：")
        for item in answer.related:
            out.print(f"  {item.citation}{item.title}")


@app.command()
def show(item_id: Annotated[str, typer.Argument(help="e.g. 二工镇:coordinated:22")]) -> None:
    """Print one item in full."""
    assistant = _open_assistant()
    item = assistant.kb.by_id.get(item_id)
    if item is None:
        err.print(f"[red]没有事项 {item_id}[/red]")
        raise typer.Exit(1)
    out.print(item.full_text())


if __name__ == "__main__":
    app()
