"""What every reader produces and the parser consumes: rows with their place, and located errors.

Its own module so that the readers (one per format) and the parser share the records without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


class ParseError(ValueError):
    """A malformed document; the message names file and location."""

    def __init__(self, source: str, where: str | int, message: str):
        self.source = source
        self.where = str(where)
        self.reason = message
        super().__init__(f"{source}:{where}: {message}")


@dataclass(frozen=True)
class Row:
    """One line of a source document: its cells and where it stands (line, or page/row)."""

    cells: tuple[str, ...]
    where: str | int
