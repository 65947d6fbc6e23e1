"""JSON Lines and durable writes for the whole project: one writer, one reader, one atomic write.

Records are split on "\\n" only. `str.splitlines()` also splits at U+2028, U+2029, U+0085
and a few control characters, which `json.dumps(ensure_ascii=False)` leaves raw inside
strings: one such character in a duty item once made the whole index unreadable. So the
writer escapes every character `splitlines()` would split on, and the reader does not use
`splitlines()` at all; either alone would suffice, both keep old files and other tools safe.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# What str.splitlines() splits on besides "\n" and "\r" that json.dumps leaves unescaped
# (it escapes everything below U+0020 itself).
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class JsonlError(ValueError):
    """A line that is not a JSON record; the message names file and line."""

    def __init__(self, source: str | Path, line: int, message: str):
        self.source = str(source)
        self.line = line
        self.reason = message
        super().__init__(f"{source}:{line}: {message}")


def dumps(record: Any) -> str:
    """One record as one line (without the newline); Chinese stays readable."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS)


def lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line, split on "\\n" only."""
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip(" \t\r"):
            yield number, line


def parse(text: str, source: str | Path, errors: list[JsonlError] | None = None) -> list[tuple[int, Any]]:
    """(line number, record) for each line; a bad line raises, or is collected into `errors`."""
    records = []
    for number, line in lines(text):
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            error = JsonlError(source, number, f"not valid JSON ({exc.msg}, column {exc.colno})")
            if errors is None:
                raise error from None
            errors.append(error)
    return records


def read_text(path: str | Path) -> str:
    """The file as UTF-8; invalid bytes are reported with their line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonlError(path, data[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None


def read(path: str | Path, errors: list[JsonlError] | None = None) -> list[tuple[int, Any]]:
    """(line number, record) for each line of a JSONL file (see `parse`)."""
    return parse(read_text(path), path, errors)


def write(path: str | Path, records: Iterable[Any]) -> None:
    """Replace the file with these records, atomically and durably."""
    write_atomic(path, (dumps(record) + "\n" for record in records))


def append(path: str | Path, records: Iterable[Any]) -> None:
    """Append whole lines and fsync; callers that share the file across processes hold a lock."""
    data = "".join(dumps(record) + "\n" for record in records)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def write_atomic(path: str | Path, text: str | Iterable[str]) -> None:
    """Write a sibling temporary file, fsync it, then rename it over `path`.

    A crash leaves either the old or the new content, never a torn file; the directory is
    fsynced too, so the rename itself survives a power cut.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for piece in [text] if isinstance(text, str) else text:
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
