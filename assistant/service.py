"""The assistant as one object: load the index once, answer many questions.

CLI, UI and eval all go through `Assistant.ask`, so they answer identically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

from assistant.answer import Answer, compose
from assistant.index import IndexMissing, KnowledgeBase, ingest, open_index
from assistant.items import ListKind
from assistant.retrieve import Retrieval, Retriever
from assistant.settings import Settings

log = logging.getLogger(__name__)


class Assistant:
    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None):
        self.settings = settings or kb.settings
        self.kb = kb
        self.retriever = Retriever(kb, self.settings)

    @classmethod
    def open(cls, settings: Settings | None = None, *, build: bool = True) -> Assistant:
        """Open the live index; with `build`, ingest the shipped corpus first if there is none."""
        settings = settings or Settings()
        try:
            return cls(open_index(settings), settings)
        except IndexMissing:
            if not build:
                raise
            log.info("no index yet: building it from %s", ", ".join(map(str, settings.corpus)))
            report = ingest(settings.corpus, settings)
            if report.errors:
                raise RuntimeError("; ".join(str(e) for e in report.errors)) from None
            return cls(open_index(settings), settings)

    def retrieve(self, question: str, *, towns: Sequence[str] = (), lists: Sequence[ListKind | str] = ()) -> Retrieval:
        return self.retriever.retrieve(question, towns=towns, lists=lists)

    def ask(self, question: str, *, towns: Sequence[str] = (), lists: Sequence[ListKind | str] = ()) -> Answer:
        started = time.perf_counter()
        retrieval = self.retrieve(question, towns=towns, lists=lists)
        answer = compose(question, retrieval)
        answer.timings = {"retrieval": retrieval.seconds, "total": time.perf_counter() - started}
        return answer

    def stream(
        self, question: str, *, towns: Sequence[str] = (), lists: Sequence[ListKind | str] = ()
    ) -> Iterator[str | Answer]:
        """Text chunks as they are produced, then the finished `Answer` as the last element.

        The extractive answer arrives as one chunk; the LLM path streams token by token.
        """
        answer = self.ask(question, towns=towns, lists=lists)
        yield answer.text
        yield answer
