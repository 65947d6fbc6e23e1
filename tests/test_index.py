import json
import shutil

import pytest

from assistant.index import IngestLocked, current_generation, ingest, open_index
from assistant.settings import CORPUS_DIR, Settings

ERGONG = CORPUS_DIR / "二工镇.txt"
BANJIEGOU = CORPUS_DIR / "半截沟镇.txt"


@pytest.fixture
def home(tmp_path, built_settings):
    """A private copy of the session index, so tests may change it."""
    shutil.copytree(built_settings.index_dir, tmp_path / "index")
    return Settings(home=tmp_path, corpus=[CORPUS_DIR])


def test_built_index_holds_every_item_with_metadata(built_settings):
    kb = open_index(built_settings)
    assert len(kb.items) == kb.collection.count() == 486
    assert kb.keywords.ids == [i.id for i in kb.items]
    record = kb.collection.get(ids=["二工镇:coordinated:22"], include=["metadatas"])
    meta = record["metadatas"][0]
    assert (meta["town"], meta["county"], meta["list"], meta["number"]) == ("二工镇", "吉木萨尔县", "coordinated", 22)
    assert meta["departments"] == "吉木萨尔县农业农村局"
    assert {d["town"]: d["counts"] for d in kb.manifest["documents"]} == {
        "二工镇": {"basic": 109, "coordinated": 102, "withdrawn": 30},
        "半截沟镇": {"basic": 109, "coordinated": 99, "withdrawn": 37},
    }


def test_dense_search_filters_on_metadata(built_settings):
    kb = open_index(built_settings)
    vector = kb.embedder.embed_query("私屠滥宰执法监管")
    hits = kb.dense(vector, {"$and": [{"town": {"$in": ["半截沟镇"]}}, {"list": {"$in": ["coordinated"]}}]}, 5)
    assert hits and all(id_.startswith("半截沟镇:coordinated:") for id_, _ in hits)
    assert hits[0][0] == "半截沟镇:coordinated:22"


def test_reingest_of_unchanged_data_embeds_nothing(home):
    before = current_generation(home)
    report = ingest(home.corpus, home)
    assert (report.embedded, report.added, report.changed, report.removed, report.unchanged) == (0, 0, 0, 0, 486)
    assert current_generation(home) == before


def test_changed_item_is_reembedded_and_removed_items_deleted(home, tmp_path):
    text = BANJIEGOU.read_text(encoding="utf-8")
    lines = text.splitlines()
    # change the title of 收回 item 37 (the last line) and drop 收回 item 36
    assert lines[-2].startswith("36\t") and lines[-1].startswith("37\t")
    last = lines[-1].split("\t")
    last[0], last[2] = "36", last[2] + "（修订）"
    edited = lines[:-2] + ["\t".join(last)]
    newer = tmp_path / "docs" / "半截沟镇.txt"
    newer.parent.mkdir()
    newer.write_text("\n".join(edited) + "\n", encoding="utf-8")

    report = ingest([newer], home)
    assert report.ok
    assert (report.changed, report.removed, report.added) == (1, 1, 0)
    assert report.embedded == 1
    kb = open_index(home)
    assert len(kb.items) == kb.collection.count() == 485
    assert kb.by_id["半截沟镇:withdrawn:36"].title.endswith("（修订）")
    assert "半截沟镇:withdrawn:37" not in kb.by_id
    assert "二工镇:basic:1" in kb.by_id  # the other township is untouched


def test_failed_document_leaves_the_index_intact(home, tmp_path):
    before = current_generation(home)
    broken = tmp_path / "二工镇.txt"
    broken.write_text(ERGONG.read_text(encoding="utf-8").replace("\n22\t乡村振兴", "\n23\t乡村振兴", 1), encoding="utf-8")
    report = ingest([broken], home, replace=True)
    assert not report.ok
    assert "out of order" in str(report.errors[0]) and str(broken) in str(report.errors[0])
    assert current_generation(home) == before
    kb = open_index(home)
    assert len(kb.items) == 486


def test_replace_drops_townships_not_given(home):
    report = ingest([ERGONG], home, replace=True)
    assert report.removed == 245
    kb = open_index(home)
    assert kb.towns == ["二工镇"] and kb.collection.count() == 241


def test_crash_before_swap_keeps_the_old_generation(home, monkeypatch):
    import assistant.index.generations as index

    before = current_generation(home)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index, "_swap", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest([ERGONG], home, replace=True)
    assert current_generation(home) == before
    assert [p.name for p in home.index_dir.glob("gen-*")] == [before.name]
    assert len(open_index(home).items) == 486


def test_concurrent_ingest_is_refused(home):
    from filelock import FileLock

    with FileLock(home.index_dir / "ingest.lock"):
        with pytest.raises(IngestLocked, match="another ingest is running"):
            ingest(home.corpus, home)


def test_items_file_round_trips(built_settings):
    folder = current_generation(built_settings)
    first = json.loads((folder / "items.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) >= {"town", "county", "prefecture", "list", "number", "category", "title"}


def test_embedder_mismatch_is_reported(built_settings, tmp_path):
    from embeddings import Embedder

    class Other(Embedder):
        name = "other:model"
        model = "model"
        dimension = 384

        def _encode_documents(self, texts):
            raise AssertionError

        def _encode_queries(self, texts):
            raise AssertionError

    with pytest.raises(RuntimeError, match="re-run `duty-assistant ingest`"):
        open_index(built_settings, embedder=Other())
