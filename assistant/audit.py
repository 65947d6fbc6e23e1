"""Append-only audit log of data changes: publish, rollback, failed upload.

One JSON object per line (`assistant.jsonl`), appended under a file lock and fsync'd before
`append` returns, so a record that was reported written survives a crash and two writers never
interleave.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from filelock import FileLock

from assistant import jsonl

Action = Literal["publish", "rollback", "upload_failed"]


@dataclass
class AuditRecord:
    action: Action
    user: str
    before: str | None = None  # live generation before
    after: str | None = None  # live generation after (same as before if nothing changed)
    files: list[dict] = field(default_factory=list)  # {"name", "sha256"}
    counts: dict = field(default_factory=dict)
    message: str = ""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class AuditLog:
    def __init__(self, path: Path):
        self.path = path

    def append(self, record: AuditRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            jsonl.append(self.path, [asdict(record)])

    def read(self) -> list[AuditRecord]:
        """Every record, oldest first; a torn last line (a crash mid-write) is skipped."""
        if not self.path.exists():
            return []
        errors: list[jsonl.JsonlError] = []
        return [AuditRecord(**data) for _, data in jsonl.read(self.path, errors)]
