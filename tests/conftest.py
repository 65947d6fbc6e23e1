"""Shared fixtures: one real index of the shipped corpus per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from assistant.index import ingest
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings


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
