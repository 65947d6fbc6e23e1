"""Places a question names that have no list in the index.

"三台镇有人私自宰羊归谁管？" names a township whose list was never loaded; quoting 二工镇's item
as if it answered for 三台镇 would be wrong. Two sources find such places, both general:
- China's administrative divisions down to county level (provinces, prefectures, cities,
  counties and districts, with their short forms), from the data file the `cpca` package ships
  (read directly: importing cpca would load pandas);
- townships (…镇, …乡, …街道): a word-segmented name before 镇/乡, since no township gazetteer
  ships on the registries we can install from.
The loaded townships, their counties and prefectures, and the province they lie in are known
places, never reported.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

SUFFIXES = (
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "特别行政区",
    "省",
    "回族自治州",
    "哈萨克自治州",
    "蒙古自治州",
    "柯尔克孜自治州",
    "藏族自治州",
    "自治州",
    "地区",
    "盟",
    "自治县",
    "县",
    "市",
    "区",
    "旗",
)
HOME_PROVINCE_MIN = 2  # short forms this long are kept in the provinces of the loaded lists
OTHER_MIN = 3  # elsewhere a two-character county short form is too often an ordinary word
# Words before 镇/乡 that name no particular township: 本镇, 我们乡, 各乡镇, 城乡…
NOT_A_NAME = re.compile(
    r"^(?:本|全|各|该|每|此|这|那|两|我|咱|哪|某|外|邻|其他|别的|附近|周边|城|村|乡|镇|一个|整个|所在)"
)


CANDIDATE = re.compile(r"[\u4e00-\u9fff]{2}(?:镇|乡|街道)")


def _segment(text: str) -> list[str]:
    """Words (jieba, loaded on first need: it takes ~1.5 s, and most questions name no township)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut(text)


@lru_cache(maxsize=1)
def divisions() -> dict[str, str]:
    """Full name → adcode for every division in the shipped data (empty without the package)."""
    spec = importlib.util.find_spec("cpca")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "adcodes.csv"
    with open(path, encoding="utf-8") as handle:
        return {row["name"]: row["adcode"] for row in csv.DictReader(handle) if row["name"]}


ETHNIC = re.compile(
    r"(?:(?:维吾尔|哈萨克|柯尔克孜|塔吉克|锡伯|蒙古|回|壮|藏|苗|土家|彝|满|朝鲜|侗|布依|瑶|白|哈尼|傣|黎|傈僳|佤|畲|拉祜|水"
    r"|东乡|纳西|景颇|土|达斡尔|羌|撒拉|毛南|仡佬|仫佬|各|鄂温克|鄂伦春|裕固|保安)族?)+自治(?:区|州|县|旗)$"
)


def _short(name: str) -> str:
    ethnic = ETHNIC.search(name)
    if ethnic and ethnic.start() >= 2:
        return name[: ethnic.start()]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@lru_cache(maxsize=8)
def _surfaces(known: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """(surface, full name) of every division outside the known places' provinces' own lists."""
    codes = divisions()
    home = {codes[name][:2] for name in known if name in codes}
    known_codes = {codes[name] for name in known if name in codes}
    known_codes |= {code[:4] + "0" * (len(code) - 4) for code in known_codes} | {
        code[:2] + "0" * 10 for code in known_codes
    }
    found: dict[str, str] = {}
    for name, code in codes.items():
        if code in known_codes or name in known:
            continue
        if len(name) >= 3:
            found.setdefault(name, name)
        short = _short(name)
        level_low = code[4:6] != "00"  # county level: the code's county digits are set
        minimum = HOME_PROVINCE_MIN if code[:2] in home or not level_low else OTHER_MIN
        if short != name and len(short) >= minimum and short not in known:
            found.setdefault(short, name)
    return tuple(sorted(found.items(), key=lambda p: -len(p[0])))


def unknown_places(text: str, known: Iterable[str], mentioned: str = "") -> list[str]:
    """Places named in `text` that are none of the `known` places (names and short forms);
    a name the lists themselves mention (`mentioned`: their text, e.g. 疏勒古城) is not reported."""
    known = frozenset(known)
    rest = text
    for name in sorted(known, key=len, reverse=True):
        rest = rest.replace(name, " ")
    found: list[str] = []
    for surface, name in _surfaces(known):
        if surface in rest and surface not in mentioned:
            found.append(name)
            rest = rest.replace(surface, " ")
    if not CANDIDATE.search(rest):
        return [place for place in dict.fromkeys(found) if place not in mentioned]
    words = [w for w in _segment(rest) if w.strip()]
    for k, word in enumerate(words):
        follows = words[k + 1] if k + 1 < len(words) else ""
        if re.fullmatch(r"[\u4e00-\u9fff]{2,6}(?:镇|乡|街道)", word) and not NOT_A_NAME.match(word):
            found.append(word)
        elif follows in ("镇", "乡") and re.fullmatch(r"[\u4e00-\u9fff]{2,5}", word) and not NOT_A_NAME.match(word):
            found.append(word + follows)
    return [place for place in dict.fromkeys(found) if place not in mentioned]
