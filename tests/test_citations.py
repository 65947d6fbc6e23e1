"""Citation markers: parsed in every form a model writes them, checked against the items given."""

from __future__ import annotations

import pytest

from assistant.answering.citations import CitationFilter, check
from assistant.items import DutyItem, ListKind


def item(town: str, kind: ListKind, number: int) -> DutyItem:
    return DutyItem(town, "吉木萨尔县", "昌吉回族自治州", kind, number, "乡村振兴", f"事项{number}")


GIVEN = {i.id: i for i in (item("二工镇", ListKind.COORDINATED, 22), item("二工镇", ListKind.WITHDRAWN, 5))}


@pytest.mark.parametrize(
    "marker",
    [
        "〔二工镇·配合履职·第22项〕",
        "【二工镇·配合履职·第22项】",
        "[[二工镇:coordinated:22]]",
        "〔二工镇・配合履职事项・22〕",
        "[二工镇, 配合, 第22项]",
    ],
)
def test_marker_forms_map_to_the_item(marker):
    checked = check(f"要劝说制止{marker}。", GIVEN)
    assert [i.id for i in checked.cited] == ["二工镇:coordinated:22"]
    assert checked.text == "要劝说制止〔二工镇·配合履职·第22项〕。" and checked.invalid == []


def test_markers_not_given_are_removed_and_reported():
    text = "见〔二工镇·收回事项·第5项〕、〔二工镇·配合履职·第23项〕和〔某某镇·其他清单·第1项〕，再见〔二工镇·收回事项·第5项〕。"
    checked = check(text, GIVEN)
    assert [i.id for i in checked.cited] == ["二工镇:withdrawn:5"]
    assert checked.invalid == ["二工镇:coordinated:23", "〔某某镇·其他清单·第1项〕"]
    assert checked.text == "见〔二工镇·收回事项·第5项〕、和，再见〔二工镇·收回事项·第5项〕。"


def test_ordinary_brackets_are_left_alone():
    text = "按照〔2025〕3号文件和[附件]办理。"
    assert check(text, GIVEN).text == text


def stream(pieces: list[str]) -> tuple[list[str], str]:
    checker = CitationFilter(GIVEN)
    shown = [checker.feed(p) for p in pieces]
    checked, tail = checker.finish()
    return [s for s in [*shown, tail] if s], checked.text


def test_filter_holds_an_open_marker_until_it_closes():
    shown, final = stream(["乡镇要", "劝说〔二工", "镇·配合履职", "·第22项〕", "。"])
    assert shown == ["乡镇要", "劝说", "〔二工镇·配合履职·第22项〕", "。"]
    assert "".join(shown) == final


def test_filter_never_shows_an_invalid_marker():
    shown, final = stream(["见", "[[二工镇:coord", "inated:99]", "]", "为准"])
    assert "99" not in "".join(shown) and "".join(shown) == final == "见为准"


def test_filter_releases_a_bracket_that_starts_no_marker():
    shown, final = stream(
        ["注意[", "这不是引用，而是一段很长的补充说明，超过了引用标记可能的最大长度，所以应当尽快显示出来"]
    )
    assert shown[0] == "注意" and "".join(shown) == final
    assert len(shown) == 2  # released before the end, not held until finish
