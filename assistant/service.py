"""The assistant as one object: load the index once, answer many questions.

CLI, UI and eval all go through `Assistant.ask`, so they answer identically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from assistant.answering.answer import Answer, compose
from assistant.answering.followup import Resolution, Turn, narrow
from assistant.answering.followup import resolve as resolve_followup
from assistant.index import IndexMissing, KnowledgeBase, ingest, open_index
from assistant.items import ListKind
from assistant.answering.query import clean_question
from assistant.answering.retrieve import Retrieval, Retriever
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.answering.chain import AnswerChain

log = logging.getLogger(__name__)

NOTE_NO_LLM = "未配置语言模型（DUTY_LLM_BASE_URL），以下为清单原文摘要"
NOTE_EXCLUDED = "已略去上一轮回答中列出的事项"


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
        *_, answer = self._answer(question, towns, lists, history, use_llm, streaming=False)
        return answer

    def stream(
        self,
        question: str,
        *,
        towns: Sequence[str] = (),
        lists: Sequence[ListKind | str] = (),
        history: Sequence[Turn] = (),
        use_llm: bool | None = None,
    ) -> Iterator[str | Answer]:
        """Text chunks as they are produced, then the finished `Answer` as the last element.

        The extractive answer arrives as one chunk; the LLM path streams token by token. The
        final `Answer.text` is authoritative (a failed generation ends in the extractive text).
        """
        return self._answer(question, towns, lists, history, use_llm, streaming=True)

    def _answer(
        self,
        question: str,
        towns: Sequence[str],
        lists: Sequence[ListKind | str],
        history: Sequence[Turn],
        use_llm: bool | None,
        *,
        streaming: bool,
    ) -> Iterator[str | Answer]:
        question = clean_question(question)
        if use_llm is not False and self.settings.llm_base_url and question:
            yield from self.chain.run(question, towns=towns, lists=lists, history=history, streaming=streaming)
            return
        started = time.perf_counter()
        resolution = self.resolve(question, history)
        retrieval = self.retrieve_resolved(resolution, towns=towns, lists=lists)
        answer = self.extractive(question, retrieval, resolution)
        if use_llm:
            answer.notes.append(NOTE_NO_LLM)
        answer.timings = {"retrieval": retrieval.seconds, "total": time.perf_counter() - started}
        yield answer.text
        yield answer

    # -- the steps both generators share -----------------------------------------------------

    def resolve(self, question: str, history: Sequence[Turn] = ()) -> Resolution:
        """Rule-based follow-up resolution (the LLM chain may rewrite on top of it)."""
        return resolve_followup(question, history, self.retriever.catalog)

    def retrieve_resolved(
        self, resolution: Resolution, *, towns: Sequence[str] = (), lists: Sequence[ListKind | str] = ()
    ) -> Retrieval:
        retrieval = self.retrieve(resolution.question, towns=towns, lists=lists)
        return narrow(retrieval, resolution.exclude, self.settings.top_k)

    def extractive(self, question: str, retrieval: Retrieval, resolution: Resolution | None = None) -> Answer:
        answer = compose(question, retrieval)
        if resolution is not None and resolution.rewritten:
            answer.meta.update(resolved_question=resolution.question, followup_rule=resolution.rule)
            if resolution.exclude:
                answer.meta["excluded"] = list(resolution.exclude)
                answer.notes.append(NOTE_EXCLUDED)
        return answer

    @cached_property
    def chain(self) -> AnswerChain:
        from assistant.answering.chain import AnswerChain

        return AnswerChain(self)
