"""Planning an ingest: which items a new generation holds, which to embed and which to delete.

A pure function of the live items and the parsed documents, compared by content hash, so
what an ingest will do can be tested (and previewed) without Chroma or a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from assistant.ingest.parsing import Document
from assistant.items import DutyItem, ListKind


@dataclass(frozen=True)
class Plan:
    items: dict[str, DutyItem]  # the new generation, in index order
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    to_embed: tuple[DutyItem, ...]  # no reusable vector: new, changed, or the old vectors are unusable
    to_delete: tuple[str, ...]  # vectors copied from the live generation that must go
    removed_towns: tuple[str, ...]  # townships the live index has and the new one lacks

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def plan_change(
    old: Mapping[str, DutyItem], documents: Sequence[Document], *, replace: bool, reuse_vectors: bool
) -> Plan:
    """Each document replaces its township's items; `replace` drops townships not given.

    `reuse_vectors` says whether the live generation's vectors can be copied (same embedder,
    same format); if not, every item is embedded and nothing needs deleting.
    """
    new_towns = {doc.town for doc in documents}
    new = {} if replace else {id_: item for id_, item in old.items() if item.town not in new_towns}
    for doc in documents:
        new.update((item.id, item) for item in doc.items)
    new = {item.id: item for item in sorted(new.values(), key=order)}

    added = tuple(id_ for id_ in new if id_ not in old)
    changed = tuple(id_ for id_ in new if id_ in old and old[id_].content_hash != new[id_].content_hash)
    removed = tuple(id_ for id_ in old if id_ not in new)
    if reuse_vectors:
        to_embed = tuple(new[id_] for id_ in (*added, *changed))
        to_delete = (*changed, *removed)
    else:
        to_embed, to_delete = tuple(new.values()), ()
    towns = {item.town for item in new.values()}
    removed_towns = tuple(dict.fromkeys(item.town for item in old.values() if item.town not in towns))
    return Plan(new, added, changed, removed, len(new) - len(added) - len(changed), to_embed, to_delete, removed_towns)


def order(item: DutyItem) -> tuple:
    """Index order: county, township, list (basic, coordinated, withdrawn), number."""
    return item.county, item.town, list(ListKind).index(item.list), item.number
