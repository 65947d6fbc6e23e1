"""The 数据管理 tab: upload → preview and diff → publish, versions with rollback, the audit log.

Every handler checks the session's administrator (a server-side `gr.State`, set only by a
successful login), so a session that never logged in is refused even if it calls the
endpoints directly. HTML here escapes everything that comes from files or users.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import gradio as gr

from assistant.access import AccessStore
from assistant.audit import AuditRecord
from assistant.index import IngestLocked
from assistant.ingest.diff import Change, ListDiff
from assistant.items import DutyItem, ListKind
from assistant.settings import Settings
from assistant.versions import (
    FilePreview,
    Preview,
    PublishRefused,
    Version,
    preview,
    publish,
    recent_audit,
    rollback,
    versions,
)
from ui.render import error_html, local_time

log = logging.getLogger(__name__)

REFUSED = "需要管理员登录。"
ACTIONS = {"publish": "发布", "rollback": "回滚", "upload_failed": "上传未发布"}
FIELD_VALUES = {
    "事项类别": "category",
    "事项名称": "title",
    "对应上级部门": "departments",
    "上级部门职责": "department_duties",
    "乡镇配合职责": "township_duties",
    "承接部门及工作方式": "receivers",
}


class DataAdmin:
    """Handlers of the data tab; `on_change` tells the app the live generation moved."""

    def __init__(self, settings: Settings, on_change: Callable[[], None]):
        self.settings = settings
        self.admins = AccessStore.from_settings(settings)
        self.on_change = on_change

    def login(self, user: str, secret: str):
        if self.admins.check_admin((user or "").strip(), secret or ""):
            user = user.strip()
            return (user, gr.Tab(visible=True), f"已登录：{user}。请打开“数据管理”页。", "", *self._tables(user))
        return None, gr.Tab(visible=False), "用户名或密码不对。", "", gr.skip(), gr.skip(), gr.skip()

    def preview(self, admin: str | None, files: Sequence[str] | None, replace: bool):
        if not admin:
            return None, error_html(REFUSED), gr.Button(interactive=False)
        if not files:
            return (
                None,
                error_html("请先选择要上传的清单文件（txt、docx、xlsx 或 pdf）。"),
                gr.Button(interactive=False),
            )
        folder = self.settings.uploads_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        folder.mkdir(parents=True)
        kept = []
        for path in map(Path, files):
            target = folder / path.name
            shutil.copyfile(path, target)  # the upload's temp file goes away; a generation's sources stay
            kept.append(target)
        checked = preview(kept, self.settings, replace=bool(replace))
        return checked, preview_html(checked), gr.Button(interactive=checked.ok)

    def publish(self, admin: str | None, checked: Preview | None, replace: bool):
        if not admin:
            return error_html(REFUSED), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if checked is None:
            return error_html("请先上传并预览。"), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            report = publish(checked, self.settings, admin, replace=bool(replace))
        except (PublishRefused, IngestLocked) as exc:
            message = f"未发布：{exc}"
        except Exception as exc:  # the live index is untouched; the trace goes to the log
            log.exception("publish failed")
            message = f"发布失败，当前索引未改变：{exc}"
        else:
            self.on_change()
            message = (
                f"已发布索引版本 {report.generation}：新增 {report.added}，更新 {report.changed}，"
                f"删除 {report.removed}，未变 {report.unchanged}；嵌入 {report.embedded} 项。"
            )
            return (_notice(message), None, gr.Button(interactive=False), *self._tables(admin))
        return (error_html(message), None, gr.Button(interactive=False), *self._tables(admin))

    def rollback(self, admin: str | None, generation: str | None):
        if not admin:
            return error_html(REFUSED), gr.skip(), gr.skip(), gr.skip()
        try:
            before, after = rollback(self.settings, admin, generation or None)
        except (ValueError, IngestLocked) as exc:
            return error_html(f"无法回滚：{exc}"), *self._tables(admin)
        self.on_change()
        return _notice(f"已回滚：当前索引版本 {after}（原为 {before}）。"), *self._tables(admin)

    def _tables(self, admin: str):
        found = versions(self.settings)
        choices = [(f"{v.generation}（{local_time(v.built)}）", v.generation) for v in found if not v.live]
        return (
            versions_html(found),
            audit_html(recent_audit(self.settings)),
            gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
        )


def _notice(message: str) -> str:
    return f'<div class="notice">{escape(message)}</div>'


def preview_html(checked: Preview) -> str:
    parts = [f'<div class="data-preview"><p>对照当前索引版本 {escape(checked.live or "（尚无索引）")}，尚未发布。</p>']
    for entry in checked.files:
        parts.append(_file_html(entry))
    for problem in checked.problems:
        parts.append(f'<p class="problem">{escape(problem)}</p>')
    verdict = "可以发布。" if checked.ok else "有错误，不能发布：请改正文件后重新上传。"
    parts.append(f'<p class="verdict {"ok" if checked.ok else "bad"}">{verdict}</p></div>')
    return "".join(parts)


def _file_html(entry: FilePreview) -> str:
    head = f'<h4>{escape(entry.name)}</h4><p class="sha">sha256 {escape(entry.sha256)}</p>'
    if entry.document is not None:
        doc, counts = entry.document, entry.counts()
        head += (
            f'<p class="town">{escape(doc.county + doc.town)}{"（新乡镇）" if entry.new_town else ""}：'
            + "，".join(f"{kind.short} {counts[kind.value]} 项" for kind in ListKind)
            + "</p>"
        )
    errors = "".join(f"<li>{escape(e)}</li>" for e in entry.errors)
    body = f'<ul class="errors">{errors}</ul>' if errors else ""
    if entry.diff is not None:
        body += diff_html(entry.diff)
    return f'<div class="file" data-file="{escape(entry.name, quote=True)}">{head}{body}</div>'


SECTIONS = (
    ("added", "新增"),
    ("removed", "删除"),
    ("changed", "修改"),
    ("moved", "移到其他清单"),
    ("renumbered", "仅序号变化"),
)


def diff_html(found: ListDiff) -> str:
    summary = "，".join(f"{label} {len(getattr(found, name))} 项" for name, label in SECTIONS)
    rows = []
    for name, label in SECTIONS:
        for change in getattr(found, name):
            rows.append(_change_row(name, label, change))
    table = (
        (
            '<table class="diff"><thead><tr><th>变化</th><th>原</th><th>新</th><th>事项名称</th><th>变化的栏目</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        if rows
        else "<p>与当前索引相同。</p>"
    )
    return f'<div class="diff-town" data-town="{escape(found.town, quote=True)}"><p>{escape(found.town)}：{summary}，未变 {found.unchanged} 项</p>{table}</div>'


def _label(item: DutyItem | None) -> str:
    return f"{item.list.short}第{item.number}项" if item else ""


def _change_row(kind: str, label: str, change: Change) -> str:
    item = change.new or change.old
    fields = "".join(
        f"<details><summary>{escape(name)}</summary><p>原：{escape(_value(change.old, name))}</p>"
        f"<p>新：{escape(_value(change.new, name))}</p></details>"
        for name in change.fields
    )
    return (
        f'<tr class="change-{kind}"><td>{label}</td><td>{escape(_label(change.old))}</td>'
        f"<td>{escape(_label(change.new))}</td><td>{escape(item.title)}</td><td>{fields}</td></tr>"
    )


def _value(item: DutyItem | None, name: str) -> str:
    if item is None:
        return ""
    value = getattr(item, FIELD_VALUES[name])
    if name == "承接部门及工作方式":
        return "；".join(f"{r.department}：{r.handling}" for r in value)
    return "；".join(value) if isinstance(value, tuple) else str(value)


def versions_html(found: Sequence[Version]) -> str:
    rows = []
    for v in found:
        sources = "<br>".join(
            f"{escape(Path(d['source']).name)} <code>{escape(d.get('sha256', '')[:16])}</code>" for d in v.documents
        )
        change = v.change
        counts = (
            f"新增 {change.get('added', 0)}，更新 {change.get('changed', 0)}，删除 {change.get('removed', 0)}"
            if change
            else "—"
        )
        diff = "<br>".join(
            f"{escape(town)}：" + "，".join(f"{label}{d.get(name, 0)}" for name, label in SECTIONS[:4])
            for town, d in v.diff.items()
        )
        rows.append(
            f'<tr data-generation="{escape(v.generation, quote=True)}"{" class=live" if v.live else ""}>'
            f"<td>{escape(v.generation)}{'（当前）' if v.live else ''}</td><td>{escape(local_time(v.built))}</td>"
            f"<td>{escape(v.published_by or '—')}</td><td>{v.items}</td><td>{counts}</td><td>{diff or '—'}</td>"
            f"<td>{sources}</td></tr>"
        )
    return (
        '<table class="versions"><thead><tr><th>版本</th><th>时间</th><th>发布人</th><th>事项</th><th>变化</th>'
        f"<th>各乡镇变化</th><th>来源文件</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def audit_html(records: Sequence[AuditRecord]) -> str:
    rows = "".join(
        f"<tr><td>{escape(local_time(r.time))}</td><td>{ACTIONS.get(r.action, escape(r.action))}</td>"
        f"<td>{escape(r.user)}</td><td>{escape(r.before or '—')}</td><td>{escape(r.after or '—')}</td>"
        f"<td>{escape('、'.join(f['name'] for f in r.files))}</td><td>{escape(r.message)}</td></tr>"
        for r in records
    )
    return (
        '<table class="audit"><thead><tr><th>时间</th><th>操作</th><th>用户</th><th>原版本</th><th>新版本</th>'
        f"<th>文件</th><th>说明</th></tr></thead><tbody>{rows}</tbody></table>"
    )
