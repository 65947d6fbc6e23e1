"""Colloquial → official wording, so '私自宰羊' also searches for '私屠滥宰'.

The table is data (`data/glossary.toml`), meant to grow with what users ask; expansions only
widen retrieval, they are never shown or cited.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

GLOSSARY_FILE = Path(__file__).parents[1] / "data" / "glossary.toml"


@lru_cache(maxsize=4)
def load(path: Path = GLOSSARY_FILE) -> tuple[tuple[tuple[str, ...], str], ...]:
    with open(path, "rb") as handle:
        table = tomllib.load(handle)
    return tuple((tuple(k.split("|")), v) for k, v in table.items())


def expand(text: str, path: Path = GLOSSARY_FILE) -> str:
    """The text followed by the official terms for every colloquial word it contains."""
    extra = [terms for words, terms in load(path) if any(w in text for w in words)]
    return " ".join([text, *extra]) if extra else text
