"""Training: what the duty classifier learns from, and the held-out scores the relevance model sees."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np

from assistant.answering.relevance import FEATURES
from assistant.index.situations import SHIPPED_VECTORS, _load_vectors, _save_vectors, load_entries, ship_vectors
from eval.questions import load_questions
from eval.train import CLASSIFIER_KINDS, Examples, classifier_examples, fit_classifier, out_of_fold

TOWNS = ("二工镇", "半截沟镇", "二工", "半截沟")


def bank_sample(n: int = 12):
    return load_questions(split="train", kinds=CLASSIFIER_KINDS)[::97][:n]


def test_bank_questions_are_labelled_with_the_entries_their_gold_items_inherit(assistant):
    retriever = assistant.retriever
    bank = bank_sample()
    examples = classifier_examples(assistant, bank)
    situations = sum(len(e.questions) for e in load_entries())
    assert examples.owners[:situations] == [""] * situations and len(examples.vectors) == len(examples.keys)
    for question in bank:
        rows = [k for k, owner in enumerate(examples.owners) if owner == question.id]
        gold = {retriever.situations.keys[retriever.position[g]] for g in question.gold}
        assert rows and {examples.keys[k] for k in rows} == gold
        assert not any(town in examples.texts[k] for k in rows for town in TOWNS), "place names are masked"
    held = {bank[0].id, bank[1].id}
    kept = examples.without(held)
    assert held.isdisjoint(kept.owners) and len(kept.keys) == len(examples.keys) - sum(
        owner in held for owner in examples.owners
    )
    assert np.array_equal(kept.vectors, examples.vectors[[o not in held for o in examples.owners]])


def test_each_train_question_is_scored_by_the_classifier_that_did_not_see_it(assistant):
    retriever = assistant.retriever
    final = retriever.classifier
    bank = bank_sample(6)
    blind = replace(final, weights=np.zeros_like(final.weights), bias=np.zeros_like(final.bias))  # uniform
    held_out = [(frozenset(q.id for q in bank[:3]), blind), (frozenset(q.id for q in bank[3:]), final)]
    found = {c.question.id: c for c in out_of_fold(assistant, bank, held_out)}
    assert retriever.classifier is final, "the final classifier is restored"
    duty = FEATURES.index("duty")
    for question in bank:
        scores = found[question.id].features[:, duty]
        if question in bank[:3]:
            assert np.allclose(scores, 1 / len(final.keys))
        else:
            assert scores.max() > 10 / len(final.keys)


def test_a_classifier_fitted_on_some_entries_knows_only_those(assistant):
    examples = classifier_examples(assistant, [])
    few = sorted(set(examples.keys))[:3]
    rows = [k for k, key in enumerate(examples.keys) if key in few]
    subset = Examples(
        examples.vectors[rows], [examples.texts[k] for k in rows], [examples.keys[k] for k in rows], [""] * len(rows)
    )
    model = fit_classifier(subset, "test")
    assert set(model.keys) == set(few) and model.weights.shape[0] == 3


def test_shipping_vectors_embeds_only_questions_not_yet_shipped(assistant, tmp_path):
    embedder = assistant.kb.embedder
    path = tmp_path / "vectors.npz"
    shutil.copy(SHIPPED_VECTORS, path)
    assert ship_vectors(embedder, path) == 0
    shipped = _load_vectors(path, embedder.name)
    dropped = list(shipped)[:5]
    _save_vectors(path, embedder.name, {t: v for t, v in shipped.items() if t not in dropped})
    assert ship_vectors(embedder, path) == 5
    again = _load_vectors(path, embedder.name)
    assert set(again) == set(shipped)
    assert np.allclose(np.stack([again[t] for t in dropped]), embedder.embed_queries(dropped), atol=2e-3)


def test_shipped_vectors_of_given_texts_are_written_once(assistant, tmp_path):
    embedder = assistant.kb.embedder
    path = tmp_path / "bank.vectors.npz"
    texts = ["村里有人私自宰羊", "低保谁审核"]
    assert ship_vectors(embedder, path, texts) == 2
    written = path.stat().st_mtime_ns
    assert ship_vectors(embedder, path, texts) == 0 and path.stat().st_mtime_ns == written  # unchanged file
    assert set(_load_vectors(path, embedder.name)) == set(texts)
    assert ship_vectors(embedder, path, texts[:1]) == 0  # a text dropped from the bank leaves the file
    assert set(_load_vectors(path, embedder.name)) == set(texts[:1])
