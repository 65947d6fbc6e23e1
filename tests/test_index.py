import shutil

import pytest

from assistant.index import IngestLocked, current_generation, ingest, open_index
from assistant.index.store import HNSW_EF_SEARCH
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


def test_dense_search_visits_every_item_and_breaks_ties_by_id(built_settings):
    kb = open_index(built_settings)
    assert kb.collection.configuration["hnsw"]["ef_search"] == HNSW_EF_SEARCH
    vector = kb.embedder.embed_query("两癌筛查")
    hits = kb.dense(vector, None, 60)
    scores = dict(hits)
    exact = sorted(scores, key=lambda id_: (-round(scores[id_], 6), id_))
    assert [id_ for id_, _ in hits] == exact, "the order is by score, then id: the same in every process"
    every = kb.similarity(vector, [item.id for item in kb.items])
    assert min(scores.values()) >= sorted(every.values(), reverse=True)[59] - 1e-6, "no nearer item is missed"


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
    assert kb.collection.configuration["hnsw"]["ef_search"] == HNSW_EF_SEARCH, "the copied collection too"
    assert kb.by_id["半截沟镇:withdrawn:36"].title.endswith("（修订）")
    assert "半截沟镇:withdrawn:37" not in kb.by_id
    assert "二工镇:basic:1" in kb.by_id  # the other township is untouched


def test_failed_document_leaves_the_index_intact(home, tmp_path):
    before = current_generation(home)
    broken = tmp_path / "二工镇.txt"
    broken.write_text(
        ERGONG.read_text(encoding="utf-8").replace("\n22\t乡村振兴", "\n23\t乡村振兴", 1), encoding="utf-8"
    )
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
    from assistant.index.store import LocalStore

    before = current_generation(home)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalStore, "swap", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest([ERGONG], home, replace=True)
    assert current_generation(home) == before
    assert [p.name for p in home.index_dir.glob("gen-*")] == [before.name]
    assert len(open_index(home).items) == 486


def test_concurrent_ingest_is_refused(home):
    from filelock import FileLock

    with FileLock(home.index_dir / "ingest.lock"), pytest.raises(IngestLocked, match="another ingest is running"):
        ingest(home.corpus, home)


def test_items_file_round_trips(built_settings):
    from assistant.index.records import items_to_jsonl, read_items
    from assistant.items import DutyItem

    folder = current_generation(built_settings)
    items = read_items(folder)
    assert len(items) == 486 and [DutyItem.from_dict(i.to_dict()) for i in items] == items
    assert items_to_jsonl(items) == (folder / "items.jsonl").read_text(encoding="utf-8")


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


def test_plan_compares_by_content_hash_without_chroma(tmp_path):
    from dataclasses import replace

    from assistant.index.plan import plan_change
    from assistant.ingest.parsing import parse_file

    ergong, banjiegou = parse_file(ERGONG), parse_file(BANJIEGOU)
    live = {item.id: item for item in ergong.items + banjiegou.items}
    edited = list(ergong.items)
    edited[0] = replace(edited[0], title=edited[0].title + "（修订）")
    del edited[-1]  # the last withdrawn item
    newer = replace(ergong, items=edited)

    plan = plan_change(live, [newer], replace=False, reuse_vectors=True)
    assert plan.changed == (edited[0].id,) and plan.removed == (ergong.items[-1].id,) and plan.added == ()
    assert [i.id for i in plan.to_embed] == [edited[0].id]
    assert set(plan.to_delete) == {edited[0].id, ergong.items[-1].id}
    assert plan.unchanged == len(live) - 2 and plan.removed_towns == ()

    fresh = plan_change(live, [newer], replace=True, reuse_vectors=False)
    assert fresh.removed_towns == ("半截沟镇",) and fresh.to_delete == ()
    assert len(fresh.to_embed) == len(fresh.items) == len(edited)
    assert plan_change(live, [ergong, banjiegou], replace=True, reuse_vectors=True).empty


def test_any_chroma_client_queries_a_generation_by_text(built_settings):
    """The collection carries the registered embedding function: no vectors needed to query it."""
    import chromadb

    from embeddings.chroma import ChromaEmbeddingFunction

    folder = current_generation(built_settings)
    collection = chromadb.PersistentClient(path=str(folder / "chroma")).get_collection("duty_items")
    assert isinstance(collection.configuration["embedding_function"], ChromaEmbeddingFunction)
    found = collection.query(query_texts=["私屠滥宰执法监管"], n_results=2, where={"town": "二工镇"})
    assert found["ids"][0][0] == "二工镇:coordinated:22"
