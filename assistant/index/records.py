"""What a generation stores per item: embedded text, keyword text, Chroma metadata, items.jsonl.

Shared by the index logic and both stores (the server store rebuilds keyword indexes from
items it downloads), so it sits below them and imports neither.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from assistant import jsonl
from assistant.index.keywords import KeywordIndex
from assistant.items import DutyItem

DENSE_CHARS = 300


def dense_text(item: DutyItem) -> str:
    """What is embedded per item: the title and what the township does about it.

    Measured on the dev questions (dense-only hit@5): title + category + departments 0.88,
    whole rows 0.93, title + township duties / receiver handling 0.96 at half the cost of
    whole rows. Cadres ask about what happens on the ground, which the township's part says.
    """
    parts = [item.title, *item.township_duties, *(r.handling for r in item.receivers)]
    return " ".join(parts)[:DENSE_CHARS]


def keyword_text(item: DutyItem) -> str:
    """What BM25 sees: the title twice (it matters most), then every other column."""
    parts = [item.title, item.title, item.category, *item.involved_departments]
    parts += item.department_duties + item.township_duties
    parts += [r.handling for r in item.receivers]
    return " ".join(parts)


def metadata(item: DutyItem) -> dict:
    """Chroma metadata: what retrieval filters on, and the hash that tells a changed item."""
    return {
        "town": item.town,
        "county": item.county,
        "prefecture": item.prefecture,
        "list": item.list.value,
        "number": item.number,
        "category": item.category,
        "departments": "、".join(item.involved_departments),
        "hash": item.content_hash,
    }


def items_to_jsonl(items: Sequence[DutyItem]) -> str:
    return "".join(jsonl.dumps(item.to_dict()) + "\n" for item in items)


def items_from_jsonl(text: str, source: str | Path = "items.jsonl") -> list[DutyItem]:
    """Items from JSONL text; a damaged line raises a JsonlError naming source:line."""
    items = []
    for number, data in jsonl.parse(text, source):
        try:
            items.append(DutyItem.from_dict(data))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise jsonl.JsonlError(source, number, f"not a duty item ({type(exc).__name__}: {exc})") from None
    return items


def read_items(folder: Path) -> list[DutyItem]:
    path = folder / "items.jsonl"
    return items_from_jsonl(jsonl.read_text(path), path)


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def write_keywords(folder: Path, items: Sequence[DutyItem]) -> None:
    KeywordIndex.build([i.id for i in items], [keyword_text(i) for i in items]).save(folder / "keywords")
