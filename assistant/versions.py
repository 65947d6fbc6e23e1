"""Keeping the lists current: preview an upload against the live index, publish, roll back.

The web app's 数据管理 tab and the CLI (`ingest --dry-run`, `versions`, `rollback`) share these
functions, so both show the same preview and diff and both write the audit log. Nothing
here touches the live index before `publish`, and `publish` swaps it atomically.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from assistant.audit import AuditLog, AuditRecord
from assistant.index.generations import (
    IngestReport,
    Progress,
    file_sha256,
    generations,
    ingest,
    live_state,
    open_store,
)
from assistant.index.generations import rollback as swap_back
from assistant.index.plan import Plan
from assistant.ingest.diff import ListDiff, diff_items
from assistant.ingest.explain import explain
from assistant.ingest.parsing import Document, ParseError, expand_paths, parse_file
from assistant.items import DutyItem, ListKind
from assistant.settings import Settings
from embeddings import Embedder

_TOWN_STEM = re.compile(r"^(?:.*?(?:自治县|县|旗|市|区))?(?P<town>[^\s\d_.（()）-]{1,12}?(?:民族乡|镇|乡|街道|苏木))$")


@dataclass
class FilePreview:
    """One uploaded file: what it holds, what is wrong with it, and what it would change."""

    name: str
    path: str
    sha256: str
    document: Document | None = None
    errors: list[str] = field(default_factory=list)  # Chinese, naming the file and the row
    diff: ListDiff | None = None
    new_town: bool = False

    def counts(self) -> dict[str, int]:
        return {kind.value: self.document.count(kind) for kind in ListKind} if self.document else {}


@dataclass
class Preview:
    files: list[FilePreview]
    live: str | None  # the generation the diff was computed against
    problems: list[str] = field(default_factory=list)  # reasons not to publish beyond single files

    @property
    def ok(self) -> bool:
        return bool(self.files) and not self.problems and not any(f.errors for f in self.files)

    @property
    def reasons(self) -> list[str]:
        return [e for f in self.files for e in f.errors] + self.problems


def preview(paths: Iterable[str | Path], settings: Settings, *, replace: bool = False) -> Preview:
    """Parse every file and diff each township against the live index; changes nothing."""
    files = expand_paths(paths)
    live, _, live_items = live_state(open_store(settings))
    by_town: dict[str, list[DutyItem]] = {}
    for item in live_items.values():
        by_town.setdefault(item.town, []).append(item)
    result = Preview([], live)
    if len(files) > settings.upload_max_files:
        result.problems.append(f"一次最多上传 {settings.upload_max_files} 个文件，本次 {len(files)} 个")
    seen: dict[str, str] = {}
    for path in files:
        entry = FilePreview(path.name, str(path), file_sha256(path) if path.is_file() else "")
        result.files.append(entry)
        try:
            doc = parse_file(path)
        except ParseError as exc:
            entry.errors.append(explain(exc))
            continue
        entry.document = doc
        named = _town_in_name(path, by_town)
        if named and named != doc.town:
            entry.errors.append(f"{path.name}：文件名写的是{named}，但文件标题是{doc.county}{doc.town}，请核对")
        if doc.town in seen:
            entry.errors.append(f"{path.name}：与 {seen[doc.town]} 是同一乡镇（{doc.town}），请只上传一个")
        seen.setdefault(doc.town, path.name)
        entry.new_town = doc.town not in by_town
        entry.diff = diff_items(doc.town, by_town.get(doc.town, []), doc.items)
    if replace:
        dropped = [town for town in by_town if town not in seen]
        if dropped:
            result.problems.append(
                f"发布将删除整个乡镇：{'、'.join(dropped)}。网页上不允许删除乡镇；"
                "确需删除时请用命令行 `duty-assistant ingest --replace`"
            )
    return result


def _town_in_name(path: Path, live_towns: Mapping[str, object]) -> str | None:
    """The township a file's name claims, if it names one (a live township, or a name like 新户镇)."""
    for town in live_towns:
        if town in path.stem:
            return town
    match = _TOWN_STEM.match(path.stem)
    return match["town"] if match else None


class PublishRefused(ValueError):
    """The upload must not be published; the message says why, in Chinese."""


def publish(
    checked: Preview,
    settings: Settings,
    user: str,
    *,
    replace: bool = False,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Publish a previewed upload as a new generation, or refuse (and record why)."""
    audit = AuditLog(settings.audit_file)
    files = [{"name": f.name, "sha256": f.sha256} for f in checked.files]
    refusal = "；".join(checked.reasons) if not checked.ok else ""
    if not refusal and open_store(settings).live() != checked.live:
        refusal = "预览之后索引已更新（可能是其他管理员发布或回滚），请重新预览后再发布"
    if refusal:
        audit.append(AuditRecord("upload_failed", user, checked.live, checked.live, files, message=refusal))
        raise PublishRefused(refusal)
    try:
        report = ingest(
            [f.path for f in checked.files],
            settings,
            replace=replace,
            embedder=embedder,
            progress=progress,
            user=user,
            annotate=diff_summary,
        )
    except Exception as exc:
        audit.append(AuditRecord("upload_failed", user, checked.live, checked.live, files, message=f"发布失败：{exc}"))
        raise
    record = audit_record(report, user, files)
    audit.append(record)
    if not report.ok:
        raise PublishRefused(record.message)
    return report


def audit_record(report: IngestReport, user: str, files: list[dict]) -> AuditRecord:
    counts = {
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "embedded": report.embedded,
    }
    if not report.ok:
        message = "；".join(str(e) for e in report.errors)
        return AuditRecord(
            "upload_failed", user, report.previous, report.generation or report.previous, files, counts, message
        )
    return AuditRecord("publish", user, report.previous, report.generation, files, counts)


def diff_summary(old: Mapping[str, DutyItem], plan: Plan) -> dict:
    """Per changed township, how many items were added / removed / changed / moved / renumbered."""
    towns = {old[id_].town for id_ in (*plan.changed, *plan.removed)} | {plan.items[id_].town for id_ in plan.added}
    summary = {}
    for town in sorted(towns):
        before = [i for i in old.values() if i.town == town]
        after = [i for i in plan.items.values() if i.town == town]
        found = diff_items(town, before, after)
        summary[town] = {
            "added": len(found.added),
            "removed": len(found.removed),
            "changed": len(found.changed),
            "moved": len(found.moved),
            "renumbered": len(found.renumbered),
        }
    return {"diff": summary}


@dataclass(frozen=True)
class Version:
    generation: str
    built: str
    published_by: str
    items: int
    documents: list[dict]  # source, town, sha256, counts
    change: dict
    diff: dict
    live: bool


def versions(settings: Settings) -> list[Version]:
    """Kept generations, newest first."""
    found, live = generations(settings)
    return [
        Version(
            g.name,
            g.manifest.get("built", ""),
            g.manifest.get("published_by", ""),
            g.manifest.get("items", 0),
            g.manifest.get("documents", []),
            g.manifest.get("change", {}),
            g.manifest.get("diff", {}),
            g.name == live,
        )
        for g in reversed(found)
    ]


def rollback(settings: Settings, user: str, generation: str | None = None) -> tuple[str, str]:
    """Make a kept generation live again and record it; (before, after)."""
    before, after = swap_back(settings, generation)
    AuditLog(settings.audit_file).append(AuditRecord("rollback", user, before, after))
    return before, after


def recent_audit(settings: Settings, limit: int = 50) -> Sequence[AuditRecord]:
    return AuditLog(settings.audit_file).read()[-limit:][::-1]
