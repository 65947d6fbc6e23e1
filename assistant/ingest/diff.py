"""What changed between two versions of a township's lists.

Numbers are not identities: inserting one item renumbers everything after it, so items are
matched by title (character-bigram similarity, best pairs first), first within the same
list and then across lists, which is how a duty moving to the withdrawn list (or back) is
found. Whatever stays unmatched was added or removed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assistant.ingest.parsing import Document, ParseError
from assistant.items import DutyItem, ListKind
from assistant.titles import match

FIELDS = (
    ("category", "事项类别"),
    ("title", "事项名称"),
    ("departments", "对应上级部门"),
    ("department_duties", "上级部门职责"),
    ("township_duties", "乡镇配合职责"),
    ("receivers", "承接部门及工作方式"),
)


@dataclass(frozen=True)
class Change:
    old: DutyItem | None
    new: DutyItem | None
    fields: tuple[str, ...] = ()  # Chinese column names whose content differs

    @property
    def renumbered(self) -> bool:
        return self.old is not None and self.new is not None and self.old.number != self.new.number


@dataclass
class ListDiff:
    town: str
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)  # same list, content differs
    moved: list[Change] = field(default_factory=list)  # now in another list (e.g. withdrawn)
    renumbered: list[Change] = field(default_factory=list)  # same content, new number
    unchanged: int = 0

    @property
    def withdrawn(self) -> list[Change]:
        """Moved to the 上级部门收回事项清单."""
        return [c for c in self.moved if c.new is not None and c.new.list is ListKind.WITHDRAWN]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved or self.renumbered)

    def to_json(self) -> dict:
        def side(item: DutyItem | None) -> dict | None:
            return None if item is None else {"list": item.list.value, "number": item.number, "title": item.title}

        def changes(found: list[Change]) -> list[dict]:
            return [{"old": side(c.old), "new": side(c.new), "fields": list(c.fields)} for c in found]

        return {
            "town": self.town,
            "added": changes(self.added),
            "removed": changes(self.removed),
            "changed": changes(self.changed),
            "moved": changes(self.moved),
            "renumbered": changes(self.renumbered),
            "unchanged": self.unchanged,
        }


def diff_documents(old: Document, new: Document) -> ListDiff:
    """Changes from `old` to `new`, two versions of one township's document."""
    if (old.town, old.county) != (new.town, new.county):
        raise ParseError(
            new.source,
            1,
            f"is {new.county}{new.town}, but {old.source} is {old.county}{old.town}: "
            "not two versions of one township's list",
        )
    return diff_items(old.town, old.items, new.items)


def diff_items(town: str, old: Sequence[DutyItem], new: Sequence[DutyItem]) -> ListDiff:
    result = ListDiff(town)
    same_list = _match(old, new, lambda a, b: a.list is b.list)
    matched_old = {a.id for a, _ in same_list}
    matched_new = {b.id for _, b in same_list}
    rest_old = [a for a in old if a.id not in matched_old]
    rest_new = [b for b in new if b.id not in matched_new]
    across = _match(rest_old, rest_new, lambda a, b: a.list is not b.list)
    for a, b in same_list:
        change = Change(a, b, changed_fields(a, b))
        if change.fields:
            result.changed.append(change)
        elif change.renumbered:
            result.renumbered.append(change)
        else:
            result.unchanged += 1
    result.moved = [Change(a, b, changed_fields(a, b)) for a, b in across]
    moved_old = {a.id for a, _ in across}
    moved_new = {b.id for _, b in across}
    result.removed = [Change(a, None) for a in rest_old if a.id not in moved_old]
    result.added = [Change(None, b) for b in rest_new if b.id not in moved_new]
    for found in (result.changed, result.moved, result.renumbered, result.added):
        found.sort(key=lambda c: _order(c.new))  # type: ignore[arg-type]  # these all have a new side
    result.removed.sort(key=lambda c: _order(c.old))  # type: ignore[arg-type]
    return result


def changed_fields(a: DutyItem, b: DutyItem) -> tuple[str, ...]:
    return tuple(label for name, label in FIELDS if getattr(a, name) != getattr(b, name))


def _match(
    left: Sequence[DutyItem], right: Sequence[DutyItem], allowed: Callable[[DutyItem, DutyItem], bool]
) -> list[tuple[DutyItem, DutyItem]]:
    """One-to-one pairs by title similarity, best first; ties go to the same list, then the closer number."""
    pairs = match(
        left,
        right,
        _title,
        _title,
        allowed=allowed,
        tie_break=lambda a, b: (a.list is not b.list, abs(a.number - b.number), a.id, b.id),
    )
    return [(a, b) for a, b, _ in pairs]


def _title(item: DutyItem) -> str:
    return item.title


def _order(item: DutyItem) -> tuple[int, int]:
    return item.list.order, item.number
