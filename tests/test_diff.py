"""`diff OLD NEW` and re-ingesting a newer version of a township's list."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from documents import layout, write_docx, write_text
from typer.testing import CliRunner

from assistant.index import ingest, open_index
from assistant.ingest.diff import diff_documents
from assistant.ingest.parsing import ParseError, parse_file
from assistant.settings import CORPUS_DIR, Settings
from ui.cli import app

TOWN = "二工镇"


def _renumber(rows: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [(str(n), *row[1:]) for n, row in enumerate(rows, 1)]


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The shipped list (old) and an edited newer version, with what was done to it."""
    folder = tmp_path_factory.mktemp("versions")
    old = write_text(layout(CORPUS_DIR / f"{TOWN}.txt"), folder / "old.txt")
    doc = layout(CORPUS_DIR / f"{TOWN}.txt")
    basic, coordinated, withdrawn = doc.tables
    removed = basic.rows.pop(10)
    basic.rows.insert(2, ("0", basic.rows[0][1], "组织开展新设立的基层网格化服务管理工作"))
    basic.rows = _renumber(basic.rows)
    row = list(coordinated.rows[4])
    row[5] = row[5] + "\n及时上报新发现的问题"
    coordinated.rows[4] = tuple(row)
    moved = coordinated.rows.pop(7)
    coordinated.rows = _renumber(coordinated.rows)
    withdrawn.rows.append((str(len(withdrawn.rows) + 1), moved[1], moved[2], f"{moved[3].split('、')[0]}： 直接负责"))
    new = write_docx(doc, folder / "new.docx")
    return (
        old,
        new,
        {
            "removed": removed[2],
            "added": "组织开展新设立的基层网格化服务管理工作",
            "changed": coordinated.rows[4][2],
            "moved": moved[2],
        },
    )


def test_diff_finds_each_kind_of_change(versions):
    old, new, done = versions
    changes = diff_documents(parse_file(old), parse_file(new))
    assert [c.old.title for c in changes.removed] == [done["removed"]]
    assert [c.new.title for c in changes.added] == [done["added"]]
    assert [(c.new.title, c.fields) for c in changes.changed] == [(done["changed"], ("乡镇配合职责",))]
    assert [(c.old.list.value, c.new.list.value, c.new.title) for c in changes.withdrawn] == [
        ("coordinated", "withdrawn", done["moved"])
    ]
    assert changes.moved == changes.withdrawn
    # the insertion at 3 and the removal at 11 shift basic items 3..10; the move shifts coordinated items after 7
    assert {c.new.list.value for c in changes.renumbered} == {"basic", "coordinated"}
    assert all(c.old.title == c.new.title for c in changes.renumbered)
    total_old = len(parse_file(old).items)
    assert (
        changes.unchanged + len(changes.renumbered) + len(changes.changed) + len(changes.moved) + len(changes.removed)
        == total_old
    )


def test_a_list_against_itself_has_no_changes():
    doc = parse_file(CORPUS_DIR / f"{TOWN}.txt")
    changes = diff_documents(doc, doc)
    assert changes.empty and changes.unchanged == len(doc.items)


def test_diff_refuses_two_different_townships():
    towns = sorted(CORPUS_DIR.glob("*.txt"))
    with pytest.raises(ParseError, match="not two versions"):
        diff_documents(parse_file(towns[0]), parse_file(towns[1]))


def test_diff_command(versions, tmp_path):
    old, new, done = versions
    result = CliRunner().invoke(app, ["diff", str(old), str(new), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["town"] == TOWN
    assert [c["new"]["title"] for c in record["added"]] == [done["added"]]
    assert [c["new"]["list"] for c in record["moved"]] == ["withdrawn"]
    shown = CliRunner().invoke(app, ["diff", str(old), str(new)])
    assert shown.exit_code == 0 and "移入收回清单1项" in re.sub(r"\s+", "", shown.output)
    broken = tmp_path / "broken.txt"
    broken.write_bytes("序号\t事项类别\n".encode("gbk"))
    failed = CliRunner().invoke(app, ["diff", str(old), str(broken)])
    assert failed.exit_code == 2 and "无法比较" in re.sub(r"\s+", "", failed.output)
    assert "Traceback" not in failed.output


def test_reingesting_a_newer_version_replaces_that_townships_items(versions, built_settings, tmp_path):
    """Incremental by content hash: only items whose content changed under their id are embedded."""
    _, new, _ = versions
    home = tmp_path / "home"
    shutil.copytree(built_settings.index_dir, home / "index")
    settings = Settings(home=home)
    before = open_index(settings)
    others = [i for i in before.items if i.town != TOWN]
    report = ingest([new], settings)
    assert report.ok
    after = open_index(settings)
    expected = parse_file(new).items
    assert [i for i in after.items if i.town == TOWN] == sorted(
        expected, key=lambda i: (list(type(i.list)).index(i.list), i.number)
    )
    assert [i for i in after.items if i.town != TOWN] == others
    old_hash = {i.id: i.content_hash for i in before.items}
    assert report.embedded == sum(old_hash.get(i.id) != i.content_hash for i in expected)
    assert report.embedded < len(expected)  # unchanged items were not embedded again
    assert after.collection.count() == len(after.items)
