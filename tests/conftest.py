"""Shared fixtures: one real index of the shipped corpus per test session."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# One cache of situation-question vectors for the whole session (and its CLI subprocesses),
# empty at the start: hermetic, yet every test home reuses the vectors computed once.
os.environ.setdefault("DUTY_VECTOR_CACHE", tempfile.mkdtemp(prefix="duty-vectors-"))

from assistant.index import ingest
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings

INDEX_FIXTURES = {"built_settings", "assistant", "items"}


def pytest_collection_modifyitems(items):
    """Tests that need the session's index get the `index` marker; the rest are the fast tier."""
    for item in items:
        if INDEX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.index)


@pytest.fixture(scope="session")
def built_settings(tmp_path_factory) -> Settings:
    """Settings whose home holds an index of the shipped corpus (built once per session)."""
    settings = Settings(home=tmp_path_factory.mktemp("home"), corpus=[CORPUS_DIR])
    report = ingest(settings.corpus, settings)
    assert report.ok, report.errors
    return settings


@pytest.fixture(scope="session")
def assistant(built_settings) -> Assistant:
    return Assistant.open(built_settings, build=False)


@pytest.fixture(scope="session")
def items(assistant):
    return assistant.kb.items
