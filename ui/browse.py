"""The item browser's logic: table rows, filters, and the same duty in another township."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from assistant.answering.citations import LIST_NAMES
from assistant.answering.query import Catalog
from assistant.answering.retrieve import align
from assistant.index import keyword_text
from assistant.items import DutyItem, item_id

COLUMNS = ["乡镇", "清单", "序号", "事项类别", "事项名称", "牵头/承接部门"]
ALL = "全部"


def row(item: DutyItem) -> list:
    return [item.town, item.list.short, item.number, item.category, item.title, "、".join(item.involved_departments)]


def id_of_row(values: Sequence) -> str | None:
    """The item id behind a table row (rows may be re-sorted in the browser, so not by position)."""
    try:
        return item_id(str(values[0]), LIST_NAMES[str(values[1])], int(values[2]))
    except (IndexError, KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Filters:
    text: str = ""
    town: str = ALL
    kind: str = ALL  # a ListKind.short label
    category: str = ALL
    department: str = ALL


class Browser:
    """All items of the loaded lists, filterable, with cross-township counterparts."""

    def __init__(self, items: Sequence[DutyItem], catalog: Catalog):
        self.items = list(items)
        self.catalog = catalog
        self.search_texts = [f"{item.town} {keyword_text(item)}".lower() for item in self.items]
        self._pairs: dict[tuple[str, str], dict[str, DutyItem]] = {}

    @cached_property
    def towns(self) -> list[str]:
        return list(dict.fromkeys(item.town for item in self.items))

    @cached_property
    def categories(self) -> list[str]:
        return sorted({item.category for item in self.items if item.category})

    @cached_property
    def departments(self) -> list[str]:
        return sorted({d for item in self.items for d in item.involved_departments})

    def filter(self, filters: Filters) -> list[DutyItem]:
        """Items matching every filter; search terms (space-separated) must all occur."""
        terms = filters.text.lower().split()
        return [
            item
            for item, text in zip(self.items, self.search_texts)
            if (filters.town in (ALL, item.town))
            and (filters.kind == ALL or item.list is LIST_NAMES.get(filters.kind))
            and (filters.category in (ALL, item.category))
            and (filters.department == ALL or filters.department in item.involved_departments)
            and all(term in text for term in terms)
        ]

    def rows(self, filters: Filters) -> list[list]:
        return [row(item) for item in self.filter(filters)]

    def counterpart(self, item: DutyItem, town: str) -> DutyItem | None:
        """The same duty in `town`, by the title alignment comparisons use."""
        if town == item.town:
            return None
        key = (item.town, town)
        if key not in self._pairs:
            left = [i for i in self.items if i.town == item.town]
            right = [i for i in self.items if i.town == town]
            pairs, _ = align(left, right, self.catalog)
            self._pairs[key] = {p.left.id: p.right for p in pairs}
        return self._pairs[key].get(item.id)

    def other_towns(self, town: str) -> list[str]:
        return [t for t in self.towns if t != town]
