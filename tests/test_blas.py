"""A process that answers questions runs BLAS on one thread, in every thread that asks."""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_info


def blas_threads() -> set[int]:
    """numpy's BLAS: the one the answer path multiplies with (scipy's loads only with scikit-learn,
    which answering never imports)."""
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]}


def test_questions_are_embedded_with_blas_on_one_thread_in_any_thread(assistant, monkeypatch):
    seen: list[set[int]] = []
    embed = assistant.kb.embedder.embed_query

    def watched(text):
        seen.append(blas_threads())
        return embed(text)

    monkeypatch.setattr(assistant.kb.embedder, "embed_query", watched)
    monkeypatch.setattr(assistant.retriever, "_last_vector", (None, None))  # none embedded yet: both embed
    worker = threading.Thread(target=assistant.ask, args=("村里有人私自宰羊，镇里该做什么？",))
    worker.start()
    worker.join(60)
    assistant.ask("邻居家新搬来的租户一直没登记，归谁管？")
    assert len(seen) == 2 and all(seen)
    assert all(threads == {1} for threads in seen)
