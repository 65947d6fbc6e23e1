"""The assistant as one object: load the index once, answer many questions.

CLI, web app, API and eval all go through `Assistant.ask` / `Assistant.stream`, so they answer
identically; the steps themselves are the pipeline's (`assistant.answering.pipeline`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property

from assistant.answering.answer import Answer
from assistant.answering.followup import Turn
from assistant.answering.pipeline import Pipeline, Request, Response
from assistant.answering.retrieve import Retrieval, Retriever
from assistant.index import IndexMissing, KnowledgeBase, ingest, open_index
from assistant.items import ListKind
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

    def ask(
        self,
        question: str,
        *,
        towns: Sequence[str] = (),
        lists: Sequence[ListKind | str] = (),
        history: Sequence[Turn] = (),
        use_llm: bool | None = None,
    ) -> Answer:
        """The finished answer; `use_llm=None` uses the language model when one is configured."""
        request = Request.of(question, towns=towns, lists=lists, history=history, use_llm=use_llm)
        return self.pipeline.run(request, streaming=False).answer

    def stream(
        self,
        question: str,
        *,
        towns: Sequence[str] = (),
        lists: Sequence[ListKind | str] = (),
        history: Sequence[Turn] = (),
        use_llm: bool | None = None,
    ) -> Response:
        """Iterate for the text as it is produced (the extractive answer comes as one piece, the
        LLM's token by token), then read `.answer`: the finished, authoritative Answer."""
        request = Request.of(question, towns=towns, lists=lists, history=history, use_llm=use_llm)
        return self.pipeline.run(request, streaming=True)

    @cached_property
    def pipeline(self) -> Pipeline:
        chain = None
        if self.settings.llm_base_url:
            from assistant.answering.chain import AnswerChain  # langchain-openai loads only when used

            chain = AnswerChain(self.settings)
        return Pipeline(self.retriever, self.settings, chain)
