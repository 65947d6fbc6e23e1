"""Keeping the lists current from scripts: `ingest --dry-run`, `versions`, `rollback`, the audit
log, bad uploads, and a publish killed at random points."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from documents import NEW_DUTY, NEW_ITEM, changed_ergong
from typer.testing import CliRunner

from assistant.audit import AuditLog
from assistant.index import current_generation, dense_text, open_index
from assistant.index.generations import file_sha256
from assistant.ingest.parsing import parse_file
from assistant.ingest.readers import MAX_FILE_BYTES
from assistant.settings import CORPUS_DIR, Settings
from assistant.versions import PublishRefused, preview, publish
from ui.cli import app

SEED = int(os.environ.get("FAULT_SEED", time.time_ns() % 100_000))
THREE_CHANGES = "二工镇：新增1项，删除0项，修改1项，移入收回清单1项，其他清单间移动0项，仅序号变化0项，未变239项"


@pytest.fixture
def home(tmp_path, built_settings) -> Settings:
    shutil.copytree(built_settings.index_dir, tmp_path / "home" / "index")
    return Settings(home=tmp_path / "home", corpus=[CORPUS_DIR])


def cli(settings: Settings, *args: str, **env: str):
    result = CliRunner().invoke(app, list(args), env={"DUTY_HOME": str(settings.home), "COLUMNS": "200", **env})
    assert "Traceback" not in result.output
    return result, re.sub(r"\s+", "", result.output)


def test_dry_run_shows_the_three_changes_and_publishes_nothing(home, tmp_path):
    before = current_generation(home)
    changed = changed_ergong(tmp_path / "newer")
    result, output = cli(home, "ingest", "--dry-run", str(changed))
    assert result.exit_code == 0, result.output
    assert THREE_CHANGES in output
    assert "吉木萨尔县二工镇" in output and "基本履职110项" in output and "收回事项31项" in output
    for shown in (NEW_ITEM, "校外培训机构监管", "“私屠滥宰”执法监管"):
        assert shown in output
    assert current_generation(home) == before
    assert [p.name for p in home.index_dir.glob("gen-*")] == [before.name]
    assert not home.audit_file.exists()


def test_dry_run_exits_nonzero_naming_the_file_that_fails(home, tmp_path):
    broken = tmp_path / "半截沟镇.txt"
    broken.write_text(
        (CORPUS_DIR / "半截沟镇.txt").read_text(encoding="utf-8").replace("\n3\t", "\n4\t", 1), encoding="utf-8"
    )
    result, output = cli(home, "ingest", "--dry-run", str(changed_ergong(tmp_path / "newer")), str(broken))
    assert result.exit_code == 1
    assert "半截沟镇.txt第" in output and "序号4不连续，应为3" in output
    assert THREE_CHANGES in output  # the good file is still previewed


def test_publish_versions_rollback_and_audit(home, tmp_path):
    old = open_index(home)
    changed = changed_ergong(tmp_path / "newer")
    result, _ = cli(home, "ingest", str(changed))
    assert result.exit_code == 0, result.output
    new = open_index(home)
    assert new.generation != old.generation
    assert NEW_DUTY in new.by_id["二工镇:coordinated:22"].township_duties[-1]

    result, _ = cli(home, "versions", "--json")
    assert result.exit_code == 0
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["generation"] for v in listed] == [new.generation, old.generation]
    assert [v["live"] for v in listed] == [True, False]
    latest = listed[0]
    assert latest["published_by"] and latest["items"] == 487
    assert latest["change"] == {"added": 2, "changed": 1, "removed": 1, "unchanged": 484, "embedded": 3}
    assert latest["diff"] == {"二工镇": {"added": 1, "removed": 0, "changed": 1, "moved": 1, "renumbered": 0}}
    source = next(d for d in latest["documents"] if d["town"] == "二工镇")
    assert source["sha256"] == file_sha256(changed) and source["counts"]["withdrawn"] == 31
    result, output = cli(home, "versions")
    assert result.exit_code == 0 and new.generation in output and source["sha256"][:12] in output

    result, _ = cli(home, "rollback")
    assert result.exit_code == 0, result.output
    back = open_index(home)
    assert back.generation == old.generation and back.items == old.items
    result, output = cli(home, "rollback")  # nothing older is kept
    assert result.exit_code == 1 and "没有更早的索引版本" in output
    result, _ = cli(home, "rollback", new.generation)  # forward again
    assert result.exit_code == 0 and open_index(home).generation == new.generation
    result, output = cli(home, "rollback", "gen-nonexistent")
    assert result.exit_code == 1 and "没有索引版本gen-nonexistent" in output

    records = AuditLog(home.audit_file).read()
    assert [r.action for r in records] == ["publish", "rollback", "rollback"]
    assert (records[0].before, records[0].after) == (old.generation, new.generation)
    assert records[0].files == [{"name": "二工镇.txt", "sha256": file_sha256(changed)}]
    assert records[0].counts["embedded"] == 3
    assert (records[1].before, records[1].after) == (new.generation, old.generation)
    assert all(r.user and r.time for r in records)


def test_only_the_last_n_generations_are_kept(home, tmp_path):
    settings = home.model_copy(update={"keep_generations": 2})
    first = current_generation(settings).name
    text = (CORPUS_DIR / "二工镇.txt").read_text(encoding="utf-8")
    made = []
    for n in range(2):
        edited = tmp_path / f"v{n}" / "二工镇.txt"
        edited.parent.mkdir()
        edited.write_text(text.replace("加强红十字会", f"加强红十字会（第{n}版）", 1), encoding="utf-8")
        made.append(publish(preview([edited], settings), settings, "tester").generation)
    kept = sorted(p.name for p in settings.index_dir.glob("gen-*"))
    assert kept == made and first not in kept


def test_bad_uploads_are_explained_in_chinese_and_nothing_is_published(home, tmp_path):
    before = current_generation(home)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "通知.txt").write_text("这是一份会议通知，不是履职事项清单。\n", encoding="utf-8")
    (inbox / "坏的.docx").write_bytes(b"PK\x03\x04" + os.urandom(300))
    huge = inbox / "大文件.txt"
    with open(huge, "wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)
    shutil.copy(CORPUS_DIR / "二工镇.txt", inbox / "半截沟镇.txt")  # the name says one township, the title another
    checked = preview(sorted(inbox.iterdir()), home)
    messages = {Path(f.path).name: f.errors for f in checked.files}
    assert "不是履职事项清单" in messages["通知.txt"][0]
    assert "已损坏" in messages["坏的.docx"][0]
    assert "文件过大" in messages["大文件.txt"][0]
    assert messages["半截沟镇.txt"] == ["半截沟镇.txt：文件名写的是半截沟镇，但文件标题是吉木萨尔县二工镇，请核对"]
    assert not checked.ok
    with pytest.raises(PublishRefused, match="不是履职事项清单"):
        publish(checked, home, "tester")

    only = preview([changed_ergong(tmp_path / "newer")], home, replace=True)
    assert only.problems and "发布将删除整个乡镇：半截沟镇" in only.problems[0]
    with pytest.raises(PublishRefused, match="删除整个乡镇"):
        publish(only, home, "tester", replace=True)

    assert current_generation(home) == before
    records = AuditLog(home.audit_file).read()
    assert [r.action for r in records] == ["upload_failed", "upload_failed"]
    assert records[0].before == records[0].after == before.name and "通知.txt" in [f["name"] for f in records[0].files]


def test_a_publish_after_someone_else_published_is_refused(home, tmp_path):
    checked = preview([changed_ergong(tmp_path / "newer")], home)
    other = tmp_path / "other" / "半截沟镇.txt"
    other.parent.mkdir()
    other.write_text(
        (CORPUS_DIR / "半截沟镇.txt")
        .read_text(encoding="utf-8")
        .replace("\t", "\t", 1)
        .replace("党的建设", "党的建设（修订）", 1),
        encoding="utf-8",
    )
    publish(preview([other], home), home, "someone")
    with pytest.raises(PublishRefused, match="重新预览"):
        publish(checked, home, "tester")


def test_killed_publish_serves_the_old_or_the_new_generation_never_a_mix(home, tmp_path):
    """SIGKILL at random points of publishing the changed list: the live generation is then
    exactly the old one or exactly the new one, items, vectors and keyword index alike."""
    changed = changed_ergong(tmp_path / "newer")
    old = {i.id: i.content_hash for i in open_index(home).items}
    new_items = {i.id: i for i in open_index(home).items if i.town != "二工镇"}
    new_items.update((i.id, i) for i in parse_file(changed).items)
    new = {id_: i.content_hash for id_, i in new_items.items()}
    rng = random.Random(SEED)
    print(f"FAULT_SEED={SEED}")
    env = {**os.environ, "DUTY_HOME": str(home.home), "HF_HUB_OFFLINE": "1"}
    seen = set()
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "ingest", str(changed)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 10.0))
        process.kill()
        process.wait(timeout=30)
        live = open_index(home)
        hashes = {i.id: i.content_hash for i in live.items}
        assert hashes in (old, new)
        seen.add("new" if hashes == new else "old")
        assert live.collection.count() == len(live.items) and live.keywords.ids == [i.id for i in live.items]
        stored = live.collection.get(ids=["二工镇:coordinated:22"], include=["documents", "metadatas"])
        item = live.by_id["二工镇:coordinated:22"]
        assert stored["documents"] == [dense_text(item)] and stored["metadatas"][0]["hash"] == item.content_hash
        if hashes == new:
            break
    print(f"outcomes: {seen}")
