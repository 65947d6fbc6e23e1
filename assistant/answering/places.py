"""Places a question names that have no list in the index.

"三台镇有人私自宰羊归谁管？" names a township whose list was never loaded; quoting 二工镇's item
as if it answered for 三台镇 would be wrong. Two sources find such places, both general:
- China's administrative divisions down to county level (provinces, prefectures, cities,
  counties and districts, with their short forms), from the data file the `cpca` package ships
  (read directly: importing cpca would load pandas);
- China's 43,000 township-level divisions (镇, 乡, 街道, 苏木, farms and parks), from the
  gazetteer the `jionlp` package ships (read directly: importing jionlp loads its tokenizer):
  full names, and in the loaded lists' provinces short forms of three characters or more
  ("泉子街" for 泉子街镇). Segmenting words before 镇/乡, as before, found 97 of the bank's 107
  townships (jieba reads 七户乡村里 as 七户/乡村/里) and reported 年底镇, 模范镇, 证明镇 … in 9
  answerable questions; the gazetteer finds all 107 and none of those.
The loaded townships, their counties and prefectures, and the province they lie in are known
places, never reported. Matching looks up the question's substrings, longest first, so the
cost is bounded by the question's length, not the gazetteer's size.

In a question told as a story, a place in a background sentence ("我表哥在乌鲁木齐学的畜牧兽医。
…镇上有没有负责引进人才的？") is where someone was, not the place asked about, when the asking
sentence sets the matter at home (镇上, 村里, 咱们). On the bank's train and dev questions this
keeps all 155 places with no list and cuts answerable questions wrongly reported from 13 to 5;
reading the asking sentence alone, whatever it says, lost five places ("我家在阜康市九运街镇，
房子被泥石流冲了。找谁安置？").
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
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


def segment(text: str) -> list[str]:
    """Words (jieba, loaded on first need: it takes ~1.5 s, and most questions name no place)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut(text)


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.exists() else None


@lru_cache(maxsize=1)
def divisions() -> dict[str, str]:
    """Full name → adcode for every division in the shipped data (empty without the package)."""
    path = _package_file("cpca", "resources", "adcodes.csv")
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        return {row["name"]: row["adcode"] for row in csv.DictReader(handle) if row["name"]}


TOWNSHIP = re.compile(r"^(.{2,}?)(工业园区|产业园区|园区|开发区|街道|镇|乡|苏木|农场|牧场|林场)$")
UNIT_PREFIX = re.compile(r"^(?:新疆生产建设)?兵团(?:农[一二三四五六七八九十]+师|第[一二三四五六七八九十]+师)?")
TOWNSHIP_SHORT_MIN = 3  # a two-character short form (城关, 新华, 红旗) is too often an ordinary word


@dataclass(frozen=True)
class Township:
    county: str
    province: str


@lru_cache(maxsize=1)
def townships() -> dict[str, Township]:
    """Township-level names with their county and province, from jionlp's gazetteer (empty
    without the package). The file lists province, prefecture, county, township and village,
    one per line, indented by level; ~0.4 s to read once."""
    path = _package_file("jionlp", "dictionary", "china_location.zip")
    if path is None:
        return {}
    found: dict[str, Township] = {}
    province = county = ""
    with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as raw:
        for line in io.TextIOWrapper(raw, encoding="utf-8"):
            depth = len(line) - len(line.lstrip("\t"))
            if depth == 0:
                province = line.strip().split("\t")[0]
            elif depth == 2:
                county = line.strip().split("\t")[0]
            elif depth == 3:
                name = UNIT_PREFIX.sub("", line.strip().split("\t")[0])
                if TOWNSHIP.match(name):
                    found.setdefault(name, Township(county, province))
    return found


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


# How a surface must sit among the question's words to count: a name where a word starts (not
# 明村镇 inside 文明村镇, 西安 inside 东西安不安全); a township's short form as whole words (not
# 村里集 inside 村里/集体). Known names are matched anywhere, so that they are never reported.
ANYWHERE, WORD_START, WHOLE_WORDS = 0, 1, 2


@lru_cache(maxsize=8)
def _surfaces(known: frozenset[str]) -> dict[str, tuple[str, int]]:
    """Surface → (full name, where it may sit) of every division and township outside the known
    places (for divisions: outside the known places' provinces' own lists). Townships are
    also found by short form in the known places' provinces, where cadres drop the 镇. The known
    names map to an empty name: matched (so 奇台 inside 老奇台镇 loses to the longer name), never
    reported."""
    codes = divisions()
    home = {codes[name][:2] for name in known if name in codes}
    known_codes = {codes[name] for name in known if name in codes}
    known_codes |= {code[:4] + "0" * (len(code) - 4) for code in known_codes} | {
        code[:2] + "0" * 10 for code in known_codes
    }
    found: dict[str, tuple[str, int]] = {}
    for name, code in codes.items():
        if code in known_codes or name in known:
            continue
        if len(name) >= 3:
            found.setdefault(name, (name, WORD_START))
        short = _short(name)
        level_low = code[4:6] != "00"  # county level: the code's county digits are set
        minimum = HOME_PROVINCE_MIN if code[:2] in home or not level_low else OTHER_MIN
        if short != name and len(short) >= minimum and short not in known:
            found.setdefault(short, (name, WORD_START))
    places = townships()
    home_provinces = {t.province for t in places.values() if t.county in known}
    for name, township in places.items():
        if name in known:
            continue
        found.setdefault(name, (name, WORD_START))
        bare = TOWNSHIP.sub(r"\1", name)
        if township.province in home_provinces and len(bare) >= TOWNSHIP_SHORT_MIN and bare not in known:
            found.setdefault(bare, (name, WHOLE_WORDS))
    return found | {name: ("", ANYWHERE) for name in known}


NAME_TAGS = frozenset({"ns", "nr", "nz", "nrt", "nrfg"})
"""jieba's tags for names: a short form its dictionary knows as a common noun or an organisation
(火车站 of 火车站镇, 共青团 of 共青团农场, 工业园区 of 工业园区街道) is an ordinary word first."""


@lru_cache(maxsize=1)
def _word_tags() -> dict[str, str]:
    import jieba.posseg

    return jieba.posseg.dt.word_tag_tab


@lru_cache(maxsize=8)
def _longest(known: frozenset[str]) -> int:
    return max(map(len, _surfaces(known)), default=0)


def _word_bounds(text: str) -> tuple[set[int], set[int]]:
    """Offsets where the question's words start, and where they end."""
    starts, ends, offset = set(), set(), 0
    for word in segment(text):
        starts.add(offset)
        offset += len(word)
        ends.add(offset)
    return starts, ends


SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
POINTS_BACK = re.compile(r"那边|那里|那儿|那个|那地方|那块|当地|他们那|她们那")
AT_HOME = re.compile(r"镇上|镇里|乡里|乡上|村里|村上|咱们|咱|我们这|我们村|我们镇|这边|这里|本镇|本村|回来|回老家")


def asked_places(text: str, known: Iterable[str], mentioned: str = "") -> list[str]:
    """The places with no list that a question asks about: only those of its asking (last)
    sentence when that sentence sets the matter at home and does not point back; else all."""
    sentences = [s for s in SENTENCE_END.split(text) if s.strip()]
    if len(sentences) > 1 and AT_HOME.search(sentences[-1]) and not POINTS_BACK.search(sentences[-1]):
        text = sentences[-1]
    return unknown_places(text, known, mentioned)


def unknown_places(text: str, known: Iterable[str], mentioned: str = "") -> list[str]:
    """Places named in `text` that are none of the `known` places (names and short forms);
    a name the lists themselves mention (`mentioned`: their text, e.g. 疏勒古城) is not reported."""
    known = frozenset(known)
    surfaces = _surfaces(known)
    rest = text
    found: list[str] = []
    bounds: tuple[set[int], set[int]] | None = None
    for size in range(min(_longest(known), len(rest)), 1, -1):
        start = 0
        while start + size <= len(rest):
            surface = rest[start : start + size]
            name, where = surfaces.get(surface, ("", None))
            fits = where == ANYWHERE
            if where in (WORD_START, WHOLE_WORDS):
                bounds = bounds or _word_bounds(text)
                fits = start in bounds[0] and (
                    where == WORD_START or start + size in bounds[1] and _word_tags().get(surface, "ns") in NAME_TAGS
                )
            if fits and name and surface.endswith("乡") and rest[start + size : start + size + 1] == "镇":
                fits = False  # 平安乡 of 平安乡镇: the generic word 乡镇 (township), not a name
            if fits and (not name or surface not in mentioned):
                if name:
                    found.append(name)
                rest = rest[:start] + " " * size + rest[start + size :]
                start += size
            else:
                start += 1
    return [place for place in dict.fromkeys(found) if place not in mentioned]
