"""`duty-assistant`: the command line. Side effects (terminal, files, exit codes) live here.

Logs go to stderr; `ask --json -` writes exactly one JSON object per input line to stdout.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant import jsonl
from assistant.answering.answer import Answer
from assistant.answering.pipeline import Response
from assistant.items import ListKind
from assistant.settings import Settings, SettingsError, load_settings

TownOption = Annotated[list[str] | None, typer.Option("--town", help="Only these townships.")]
ListOption = Annotated[list[str] | None, typer.Option("--list", help="basic / coordinated / withdrawn")]
LlmOption = Annotated[
    bool | None, typer.Option("--llm/--no-llm", help="Force the language model on/off; default: on if configured.")
]

app = typer.Typer(
    help="履职助手：依据乡镇履职事项清单回答问题，并注明出处。", no_args_is_help=True, add_completion=False
)
# Emoji codes off: ':100:' in an item or 'file:100' in an error must print as written. Markup
# stays on for our own styling; every piece of document or user text is escaped or printed
# with markup=False.
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


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
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders; default: the shipped lists.")] = None,
    replace: Annotated[bool, typer.Option(help="Make the index hold exactly these documents.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Preview and diff against the live index; publish nothing.")
    ] = False,
) -> None:
    """Parse duty lists and bring the index up to date (only new or changed items are embedded)."""
    from assistant.audit import AuditLog
    from assistant.index import IngestLocked
    from assistant.index import ingest as run_ingest
    from assistant.versions import audit_record, diff_summary

    settings = _settings()
    if dry_run:
        raise typer.Exit(print_preview(paths or settings.corpus, settings, replace))
    with Progress(TextColumn("嵌入事项"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("embed", total=None)
        try:
            report = run_ingest(
                paths or settings.corpus,
                settings,
                replace=replace,
                user=_user(),
                annotate=diff_summary,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except IngestLocked as exc:
            err.print(f"[red]无法导入：{escape(str(exc))}[/red]")
            raise typer.Exit(3) from None
        except Exception as exc:  # e.g. the Chroma server is unreachable: the live index is untouched
            logging.getLogger(__name__).debug("ingest failed", exc_info=True)
            err.print(f"[red]导入失败，索引未改变：{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
    if report.errors or (report.generation and report.generation != report.previous):
        sources = [*report.documents, *(e.source for e in report.errors if Path(e.source).is_file())]
        AuditLog(settings.audit_file).append(audit_record(report, _user(), _hashes(sources)))
    for error in report.errors:
        err.print(f"[red]未导入 {escape(str(error))}[/red]")
    err.print(
        f"导入完成：新增 {report.added}，更新 {report.changed}，删除 {report.removed}，未变 {report.unchanged}；"
        f"嵌入 {report.embedded} 项，用时 {report.seconds:.1f} 秒。索引版本 {report.generation or '未改变'}"
    )
    if report.errors:
        raise typer.Exit(1)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _hashes(sources: list[str]) -> list[dict]:
    from assistant.index.generations import file_sha256

    return [{"name": Path(s).name, "sha256": file_sha256(s)} for s in sources]


def print_preview(paths, settings: Settings, replace: bool) -> int:
    """`ingest --dry-run`: each file's township, counts and failures, and its diff against the live index."""
    from assistant.versions import preview

    checked = preview(paths, settings, replace=replace)
    out.print(f"预览（未发布），对照当前索引版本 {checked.live or '（尚无索引）'}：")
    for entry in checked.files:
        if entry.document is None:
            out.print(f"[red]{escape(entry.name)}：无法导入[/red]")
        else:
            doc, counts = entry.document, entry.counts()
            out.print(
                f"{escape(entry.name)}：{escape(doc.county + doc.town)}{'（新乡镇）' if entry.new_town else ''}，"
                + "，".join(f"{kind.short} {counts[kind.value]} 项" for kind in ListKind)
            )
        for error in entry.errors:
            out.print(f"[red]  {escape(error)}[/red]")
        if entry.diff is not None:
            print_diff(entry.diff)
    for problem in checked.problems:
        out.print(f"[red]{escape(problem)}[/red]")
    return 1 if any(entry.errors for entry in checked.files) else 0


@app.command()
def versions(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line, newest first.")] = False,
) -> None:
    """Kept index versions: time, who published, source files with sha256, counts, changes."""
    from dataclasses import asdict

    from assistant.versions import versions as kept

    found = kept(_settings())
    if json_output:
        for version in found:
            sys.stdout.write(jsonl.dumps(asdict(version)) + "\n")
        return
    table = Table("版本", "当前", "时间", "发布人", "事项", "变化", "来源文件", title=f"索引版本（{len(found)}个）")
    for v in found:
        change = v.change
        table.add_row(
            v.generation,
            "是" if v.live else "",
            v.built,
            escape(v.published_by or "—"),
            str(v.items),
            f"新增 {change.get('added', 0)} 更新 {change.get('changed', 0)} 删除 {change.get('removed', 0)}"
            if change
            else "—",
            escape("；".join(f"{Path(d['source']).name} {d.get('sha256', '')[:12]}" for d in v.documents)),
        )
    out.print(table)


@app.command()
def rollback(
    generation: Annotated[
        str | None, typer.Argument(help="A version from `versions`; default: the previous one.")
    ] = None,
) -> None:
    """Make an earlier index version live again (atomic; the current one is kept)."""
    from assistant.index import IngestLocked
    from assistant.versions import rollback as roll_back

    try:
        before, after = roll_back(_settings(), _user(), generation)
    except IngestLocked as exc:
        err.print(f"[red]无法回滚：{escape(str(exc))}[/red]")
        raise typer.Exit(3) from None
    except ValueError as exc:
        err.print(f"[red]无法回滚：{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    err.print(f"已回滚：当前索引版本 {after}（原为 {before or '无'}）")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="问题；with --json, '-' reads one question per stdin line.")],
    json_output: Annotated[bool, typer.Option("--json", help="Machine interface: one JSON object per line.")] = False,
    town: TownOption = None,
    list_kind: ListOption = None,
    llm: LlmOption = None,
) -> None:
    """Answer a question from the duty lists, citing the items."""
    from assistant.answering.query import clean_question

    if json_output:
        _ask_json(question, {"towns": town or (), "lists": list_kind or (), "use_llm": llm})
        return
    question, valid = utf8_text(question)
    if not valid:
        err.print(f"[red]问题不是有效的 UTF-8 文本，无法回答：{escape(question)}[/red]")
        raise typer.Exit(2)
    if not clean_question(question):
        err.print("[red]问题是空的，请输入要查询的问题。[/red]")
        raise typer.Exit(2)
    assistant = _open_assistant()
    print_streamed(assistant.stream(question, towns=town or (), lists=list_kind or (), use_llm=llm))


def _ask_json(question: str, filters: dict) -> None:
    """One JSON object per question (per non-blank stdin line with '-'), always valid UTF-8.

    Stdin is read as bytes: a line that is not UTF-8 is decoded with replacement and answered
    with an error object instead of being echoed back raw or ending the stream.
    """
    if question == "-":
        lines = (utf8_text(raw.strip()) for raw in sys.stdin.buffer)
        questions = ((text, valid) for text, valid in lines if text.strip())
    else:
        questions = iter([utf8_text(question)])
    assistant = _open_assistant()
    for line, valid in questions:
        if not valid:
            record = _error_record(line, "问题不是有效的 UTF-8 文本（无法解码的字节已替换为 \ufffd），未回答")
        else:
            try:
                record = assistant.ask(line, **filters).to_json()
                record["question"] = line  # as given, invisible characters and all: callers match on it
            except Exception as exc:  # one bad question must not end the stream
                logging.getLogger(__name__).exception("failed on %r", line)
                record = _error_record(line, str(exc))
        _emit(record)


def _error_record(question: str, error: str) -> dict:
    return {"question": question, "answer": "", "citations": [], "abstained": True, "error": error}


def _emit(record: dict) -> None:
    """One line of UTF-8 JSON on stdout, whatever the locale says."""
    line = (jsonl.dumps(record) + "\n").encode("utf-8", errors="replace")
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:  # a text-only stdout (tests)
        sys.stdout.write(line.decode("utf-8"))
    else:
        sys.stdout.flush()
        stream.write(line)
    sys.stdout.flush()


def utf8_text(text: str | bytes) -> tuple[str, bool]:
    """Text that is valid UTF-8, and whether it already was (undecodable bytes become U+FFFD).

    Arguments and lines arrive as bytes or with surrogate escapes for bytes that were not
    UTF-8; printing those would write invalid UTF-8 or raise.
    """
    if isinstance(text, bytes):
        raw = text
    else:
        try:
            text.encode("utf-8")
            return text, True
        except UnicodeEncodeError:
            raw = text.encode("utf-8", errors="surrogateescape" if _escaped_only(text) else "surrogatepass")
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _escaped_only(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def _settings() -> Settings:
    """The settings, or a clear message naming the file or variable and the field."""
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[red]配置有误：{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


def _open_assistant():
    from assistant.service import Assistant

    settings = _settings()
    try:
        return Assistant.open(settings)
    except Exception as exc:
        err.print(f"[red]无法打开索引：{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


def print_streamed(response: Response) -> Answer:
    """Show the text as it is generated, then the notes and sources; returns the Answer."""
    for text in response:
        out.print(text, end="", markup=False, highlight=False)
    out.print()
    print_sources(response.answer)
    return response.answer


def print_sources(answer: Answer) -> None:
    for note in answer.notes:
        out.print(f"[yellow]注：{escape(note)}[/yellow]")
    if answer.citations:
        table = Table("乡镇", "清单", "序号", "事项类别", "事项名称", title=f"引用事项（{len(answer.citations)}项）")
        for item in answer.citations:
            table.add_row(*map(escape, (item.town, item.list.short, str(item.number), item.category, item.title)))
        out.print(table)
    elif answer.related:
        out.print("相关事项（仅供参考，未作为依据）：")
        for item in answer.related:
            out.print(f"  {item.citation}{item.title}", markup=False, highlight=False)


@app.command()
def show(item_id: Annotated[str, typer.Argument(help="e.g. 二工镇:coordinated:22")]) -> None:
    """Print one item in full."""
    assistant = _open_assistant()
    item = assistant.kb.by_id.get(item_id)
    if item is None:
        err.print(f"[red]没有事项 {escape(item_id)}[/red]")
        raise typer.Exit(1)
    out.print(item.full_text(), markup=False, highlight=False, soft_wrap=True)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier version of a township's list (any format).")],
    new: Annotated[Path, typer.Argument(help="The newer version.")],
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Added / removed / changed / moved-to-withdrawn items between two versions of a list."""
    from assistant.ingest.diff import diff_documents
    from assistant.ingest.parsing import ParseError, parse_file
    from assistant.ingest.readers import Limits

    limits = Limits.from_settings(_settings())
    try:
        changes = diff_documents(parse_file(old, limits), parse_file(new, limits))
    except ParseError as exc:
        err.print(f"[red]无法比较：{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if json_output:
        _emit(changes.to_json())
        return
    print_diff(changes)


def print_diff(changes) -> None:
    def label(item) -> str:
        return f"{item.list.short}第{item.number}项"

    out.print(
        f"{escape(changes.town)}：新增 {len(changes.added)} 项，删除 {len(changes.removed)} 项，修改 {len(changes.changed)} 项，"
        f"移入收回清单 {len(changes.withdrawn)} 项，其他清单间移动 {len(changes.moved) - len(changes.withdrawn)} 项，"
        f"仅序号变化 {len(changes.renumbered)} 项，未变 {changes.unchanged} 项"
    )
    sections = [
        ("新增", changes.added, lambda c: ("", label(c.new), c.new.title, "")),
        ("删除", changes.removed, lambda c: (label(c.old), "", c.old.title, "")),
        ("修改", changes.changed, lambda c: (label(c.old), label(c.new), c.new.title, "、".join(c.fields))),
        (
            "移动（含移入收回清单）",
            changes.moved,
            lambda c: (label(c.old), label(c.new), c.new.title, "、".join(c.fields)),
        ),
    ]
    for title, found, row in sections:
        if found:
            table = Table("原", "新", "事项名称", "变化的栏目", title=f"{title}（{len(found)}项）")
            for change in found:
                table.add_row(*map(escape, row(change)))
            out.print(table)


@app.command()
def ui(
    host: Annotated[str | None, typer.Option(help="Address to listen on; default: settings ui_host.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default: settings ui_port.")] = None,
) -> None:
    """Start the web app (builds the index on first use)."""
    from ui.app import serve

    serve(_settings(), host, port)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on; default: settings api_host.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default: settings api_port.")] = None,
) -> None:
    """HTTP API (/v1, OpenAI-compatible chat) and the web app in one process."""
    from ui.api import Refused
    from ui.api import serve as run_service

    try:
        run_service(_settings(), host, port)
    except Refused as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


keys_app = typer.Typer(help="API keys and web logins for `serve` (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. open-webui or 二工镇值班室.")],
    password: Annotated[bool, typer.Option("--password", help="Set a web-login password instead of a key.")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="May log in to the 数据管理 tab and change the data.")] = False,
) -> None:
    """Make a new API key and print it once (only its hash is stored); or set a web-login password."""
    from assistant.access import AccessError, AccessStore

    store = AccessStore(_settings().access_file)
    try:
        if password:
            store.set_password(name, typer.prompt("密码", hide_input=True, confirmation_prompt=True), admin=admin)
            err.print(f"已为 {escape(name)} 设置网页登录密码（{store.path}）")
            return
        key = store.add_key(name, admin=admin)
    except AccessError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    sys.stdout.write(key + "\n")
    err.print(f"已为 {escape(name)} 生成 API 密钥（只显示这一次，请妥善保存；{store.path} 只保存其哈希）")


@keys_app.command("list")
def keys_list() -> None:
    """Names and kinds of the stored credentials (never the keys)."""
    from assistant.access import AccessStore

    for credential in AccessStore(_settings().access_file).credentials:
        out.print(f"{credential.name}\t{credential.kind}\t{credential.created}", markup=False)


@keys_app.command("remove")
def keys_remove(name: Annotated[str, typer.Argument(help="The name given to `keys add`.")]) -> None:
    """Revoke every key and password of NAME (a running `serve` notices at the next request)."""
    from assistant.access import AccessStore

    removed = AccessStore(_settings().access_file).remove(name)
    err.print(f"已删除 {escape(name)} 的 {removed} 个凭据")
    if not removed:
        raise typer.Exit(1)


feedback_app = typer.Typer(help="User feedback collected by the web app.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    eval_set: Annotated[
        Path | None, typer.Option(help="Skip questions already in this eval set; default: eval/questions.jsonl.")
    ] = None,
) -> None:
    """Downvoted or corrected answers as candidate eval questions (eval/questions.jsonl format)."""
    from assistant.feedback import FeedbackLog
    from eval.feedback import export, known_questions

    settings = _settings()
    try:
        result = export(FeedbackLog(settings.feedback_file), known_questions(eval_set))
    except (OSError, jsonl.JsonlError) as exc:
        err.print(f"[red]无法导出：{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    for error in result.errors:
        err.print(f"[yellow]跳过 {escape(str(error))}[/yellow]")
    for record in result.incomplete:
        comment = f"（意见：{record.comment}）" if record.comment else ""
        err.print(f"未导出（差评但未注明应引用的事项）：{record.question}{comment}", markup=False)
    lines = "".join(jsonl.dumps(q) + "\n" for q in result.questions)
    if output:
        output.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    err.print(f"导出候选评测问题 {len(result.questions)} 条（来自 {escape(str(settings.feedback_file))}）")


@app.command()
def chat(
    town: TownOption = None,
    list_kind: ListOption = None,
    llm: LlmOption = None,
) -> None:
    """Multi-turn session: follow-ups such as "那半截沟镇呢？" refer to the earlier turns."""
    from assistant.answering.followup import Turn

    assistant = _open_assistant()
    filters = {"towns": town or (), "lists": list_kind or (), "use_llm": llm}
    history: list[Turn] = []
    if hasattr(sys.stdin, "reconfigure"):  # undecodable bytes arrive escaped instead of raising
        sys.stdin.reconfigure(errors="surrogateescape")
    err.print("履职助手：请输入问题，可以接着追问；空行、“退出”或 Ctrl-D 结束。")
    while True:
        try:
            question, valid = utf8_text(input("\n问：").strip())
        except (EOFError, KeyboardInterrupt):
            break
        if not valid:
            err.print("[red]这一行不是有效的 UTF-8 文本，请重新输入。[/red]")
            continue
        if question in ("", "退出", "exit", "quit"):
            break
        try:
            answer = print_streamed(assistant.stream(question, history=history, **filters))
        except Exception as exc:  # the conversation survives one failed answer
            logging.getLogger(__name__).debug("answer failed", exc_info=True)
            err.print(f"[red]回答时出错：{escape(str(exc))}[/red]")
            continue
        history.append(Turn(question, answer))


@app.command("llm-server")
def llm_server(
    model: Annotated[Path, typer.Option("--model", help="A GGUF model file.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    context: Annotated[int, typer.Option(help="Context window in tokens.")] = 8192,
    threads: Annotated[int | None, typer.Option(help="CPU threads; default: all cores.")] = None,
    sha256: Annotated[str | None, typer.Option(help="Refuse to start unless the file has this sha256.")] = None,
) -> None:
    """Serve a local GGUF model as an OpenAI-compatible endpoint on 127.0.0.1 (opt-in, needs xllamacpp)."""
    import time

    from ui.llm_server import LLMServerError, serve, sha256_of

    try:
        if sha256 and sha256_of(model) != sha256.strip().lower():
            raise LLMServerError(f"{model}: sha256 与 {sha256} 不符，拒绝加载")
        server = serve(model, port=port, context=context, threads=threads)
    except LLMServerError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    err.print(
        f"本地模型服务已启动：{server.url}\n"
        f"在另一个终端设置 DUTY_LLM_BASE_URL={server.url} DUTY_LLM_MODEL={model.stem} 后使用 ask / chat / ui；"
        "按 Ctrl-C 停止。"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        err.print("模型服务已停止。")


@app.command()
def train() -> None:
    """Re-fit the learned intent and relevance models on the train split (thresholds chosen on dev)."""
    from eval.train import main as run_training

    run_training(_settings())


@app.command("eval")
def eval_command(
    split: Annotated[str, typer.Option(help="dev / test / all")] = "test",
    generator: Annotated[str, typer.Option(help="extractive / llm")] = "extractive",
    baseline: Annotated[
        list[str] | None, typer.Option("--baseline", help="Also run: keyword / dense / naive-rag / all.")
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Show the change vs the last run (same split, generator).")
    ] = False,
    against: Annotated[
        Path | None, typer.Option("--against", help="Compare with this saved report or baseline instead.")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Exit 1 if a headline figure regressed by more than this vs the comparison.")
    ] = None,
    fail_under: Annotated[
        list[str] | None, typer.Option("--fail-under", help="Exit 1 below a floor, e.g. citation_hit=0.95.")
    ] = None,
    reports_dir: Annotated[Path | None, typer.Option(help="Default: settings reports_dir (./reports).")] = None,
    save_baseline: Annotated[
        Path | None, typer.Option(help="Write ours' figures as a gate reference, e.g. eval/baseline.json.")
    ] = None,
    questions: Annotated[
        Path | None, typer.Option(help="Another question file in the same format (default: eval/questions.jsonl).")
    ] = None,
) -> None:
    """Run the graded questions through `ask`; per-kind table, reports under reports/, history, gate."""
    from eval.command import Options, run

    options = Options(
        settings=_settings(),
        split=split,
        generator=generator,
        baselines=baseline or (),
        compare=compare,
        against=against,
        tolerance=tolerance,
        fail_under=fail_under or (),
        reports_dir=reports_dir,
        save_baseline=save_baseline,
    )
    if questions:
        options.questions = questions
    code = run(options, out, err)
    if code:
        raise typer.Exit(code)


if __name__ == "__main__":
    app()
