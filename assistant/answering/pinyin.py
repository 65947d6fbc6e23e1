"""Pinyin typed in place of characters, read back as the lists' own words.

With the input method off, or to save keystrokes in a chat, askers type a term as pinyin
("dibao" for 低保, "shuifei" for 水费) or as its initials ("cjr" for 残疾人). Letters match nothing
in the lists, so such a question lost its subject; a township typed as "ergong" or "banjiegou"
lost its place. Each lower-case run of letters is looked up among the loaded place names (which
come first) and the words of the loaded items: by its whole pinyin first, then, for three letters or more,
as initials; the word the items use most often wins, and a run no word explains stays as typed.
Upper case is left alone: KTV, GPS and APP are words of their own.

Measured on the bank's pinyin-shorthand questions (round n, dev): see eval/README.md.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import cached_property

import jieba
from pypinyin import Style, lazy_pinyin

_LETTERS = re.compile(r"(?<![A-Za-z])[a-z]{2,}(?![A-Za-z])")
_WORD = re.compile(r"[\u4e00-\u9fff]{2,6}")
MIN_INITIALS = 3  # two initials name too many words (xj: 乡镇, 县级, 新疆 …)


class PinyinLexicon:
    """Toneless pinyin and initials → a place name, or the most frequent word of the texts with them."""

    def __init__(self, texts: Iterable[str], names: Iterable[str] = ()):
        self._texts = list(texts)
        self._names = list(dict.fromkeys(names))

    @cached_property
    def _maps(self) -> tuple[dict[str, str], dict[str, str]]:
        """Built on the first question with letters: segmenting ~500 items takes about a second."""
        counts = Counter(w for text in self._texts for w in jieba.lcut(text) if _WORD.fullmatch(w))
        whole: dict[str, str] = {}
        initials: dict[str, str] = {}
        for word in [*self._names, *(w for w, _ in counts.most_common())]:
            whole.setdefault("".join(lazy_pinyin(word)), word)
            if len(word) >= MIN_INITIALS:
                initials.setdefault("".join(lazy_pinyin(word, style=Style.FIRST_LETTER)), word)
        return whole, initials

    def word(self, letters: str) -> str | None:
        whole, initials = self._maps  # initials hold only words of MIN_INITIALS characters or more
        return whole.get(letters) or initials.get(letters)

    def restore(self, text: str) -> str:
        """The text with every lower-case pinyin run a word of the texts explains replaced by it
        (a text without one never builds the maps)."""
        return _LETTERS.sub(lambda m: self.word(m.group()) or m.group(), text)
