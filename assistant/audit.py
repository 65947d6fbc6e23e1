"""Append-only audit log of data changes: publish, rollback, failed upload.

One JSON object per line, appended under a file lock and fsync'd before `append` returns,
so a record that was reported written survives a crash and two writers never interleave.
`_encode` / `_decode` are the one place that knows the line format.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from filelock import FileLock

Action = Literal["publish", "rollback", "upload_failed"]
# json.dumps(ensure_ascii=False) leaves these raw; some readers split lines on them.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


@dataclass
class AuditRecord:
    action: Action
    user: str
    before: str | None = None  # live generation before
    after: str | None = None  # live generation after (same as before if nothing changed)
    files: list[dict] = field(default_factory=list)  # {"name", "sha256"}
    counts: dict = field(default_factory=dict)
    message: str = ""
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class AuditLog:
    def __init__(self, path: Path):
        self.path = path

    def append(self, record: AuditRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"), open(self.path, "a", encoding="utf-8") as out:
            out.write(_encode(asdict(record)))
            out.flush()
            os.fsync(out.fileno())

    def read(self) -> list[AuditRecord]:
        """Every record, oldest first; a torn last line (a crash mid-write) is skipped."""
        if not self.path.exists():
            return []
        return [AuditRecord(**data) for data in _decode(self.path.read_text(encoding="utf-8"))]


def _encode(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=False)
    for char, escaped in _LINE_BREAKS.items():
        text = text.replace(char, escaped)
    return text + "\n"


def _decode(text: str) -> list[dict]:
    records = []
    for line in text.split("\n"):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
