"""Citation markers in model output: parse, validate against the items given, filter while streaming.

The model sees each item headed by its user-facing marker 〔镇·清单·第N项〕 and is asked to copy
it. Whatever it writes, only markers naming an item it was given survive; the others are cut
from the text and reported. Variants a model tends to produce (【】, [[…]], ids such as
二工镇:coordinated:22) are read the same way, and valid ones are rewritten to the canonical form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from assistant.items import DutyItem, ListKind, item_id

OPENING = "〔【["
CLOSING = "〕】]"
_SEPARATOR = r"\s*[·・:：,，]\s*"
MARKER = re.compile(
    r"[〔【\[]{1,2}\s*(?P<town>[^\s〔〕【】\[\]·・:：,，]{1,15}?)"
    + _SEPARATOR
    + r"(?P<list>[^\s〔〕【】\[\]·・:：,，]{2,12}?)"
    + _SEPARATOR
    + r"第?\s*(?P<number>\d{1,4})\s*项?\s*[〕】\]]{1,2}"
)
LIST_NAMES: dict[str, ListKind] = {}
for _kind in ListKind:
    for _name in (_kind.value, _kind.short, _kind.label, _kind.label.removesuffix("清单")):
        LIST_NAMES[_name] = _kind
LIST_NAMES.update({"基本": ListKind.BASIC, "配合": ListKind.COORDINATED, "收回": ListKind.WITHDRAWN})


@dataclass
class Checked:
    text: str  # valid markers in canonical form, invalid ones removed
    cited: list[DutyItem] = field(default_factory=list)  # valid, in order of first mention
    invalid: list[str] = field(default_factory=list)  # ids (or raw markers) not among the items given


def marker_id(match: re.Match) -> str | None:
    kind = LIST_NAMES.get(match["list"])
    return item_id(match["town"], kind, int(match["number"])) if kind else None


def check(text: str, allowed: Mapping[str, DutyItem]) -> Checked:
    """Validate every marker in `text` against the items the model was given (`allowed`, by id)."""
    cited: dict[str, DutyItem] = {}
    invalid: dict[str, None] = {}

    def replace(match: re.Match) -> str:
        id_ = marker_id(match)
        if id_ is not None and id_ in allowed:
            cited.setdefault(id_, allowed[id_])
            return allowed[id_].citation
        invalid.setdefault(id_ or match.group(0))
        return ""

    cleaned = MARKER.sub(replace, text)
    return Checked(cleaned, list(cited.values()), list(invalid))


class CitationFilter:
    """Validates markers as text streams in, holding back only a marker that is still open.

    What it emits is always a prefix of the final checked text, so a streamed answer never
    shows a citation that the finished answer drops.
    """

    HOLD = 48  # characters; an opening bracket further back than this starts no marker

    def __init__(self, allowed: Mapping[str, DutyItem]):
        self.allowed = allowed
        self.raw = ""
        self.sent = ""

    def feed(self, piece: str) -> str:
        self.raw += piece
        return self._emit(check(self.raw[: self._safe_end()], self.allowed).text)

    def finish(self) -> tuple[Checked, str]:
        """The checked full text, and what remains to be emitted of it."""
        checked = check(self.raw, self.allowed)
        return checked, self._emit(checked.text)

    def _safe_end(self) -> int:
        opening = max(self.raw.rfind(c) for c in OPENING)
        if opening < 0 or len(self.raw) - opening > self.HOLD:
            return len(self.raw)
        if any(c in self.raw[opening:] for c in CLOSING):
            return len(self.raw)
        while opening > 0 and self.raw[opening - 1] in OPENING:
            opening -= 1
        return opening

    def _emit(self, text: str) -> str:
        if not text.startswith(self.sent):
            return ""  # cannot take back what was shown; the final answer text is authoritative
        delta, self.sent = text[len(self.sent) :], text
        return delta
