"""Format readers: each turns a file into the `Row` stream that `parsing.parse_rows` reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.parsing import ParseError, Row, read_text

Reader = Callable[[Path], list[Row]]

READERS: dict[str, Reader] = {
    ".txt": read_text,
    ".tsv": read_text,
}
SUFFIXES = frozenset(READERS)


def reader_for(path: Path) -> Reader:
    try:
        return READERS[path.suffix.lower()]
    except KeyError:
        raise ParseError(str(path), 0, f"unsupported file type {path.suffix or '(none)'}; expected one of "
                         + ", ".join(sorted(SUFFIXES))) from None
