"""One answer pipeline: resolve → understand → retrieve → compose, read top to bottom.

A `Request` (question, filters, conversation, generation choice) enters once. The follow-up is
resolved against the conversation (rules; the language model may rewrite on top), the question
is understood once, retrieval selects the items, and the prepared context goes to one of two
composers: the extractive one, or the LLM chain, which starts from the extractive answer and
falls back to it. Neither composer calls back into the pipeline.

`run` returns a `Response`: iterate it for the text as it is produced, then read `.answer`
(simonw/llm's shape) — the finished, authoritative `Answer`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from assistant.answering.answer import Answer, compose
from assistant.answering.blas import one_blas_thread
from assistant.answering.followup import Resolution, Turn, narrow, resolve
from assistant.answering.intent import load_model as load_intent_model
from assistant.answering.query import clean_question
from assistant.answering.retrieve import Retrieval, Retriever
from assistant.items import ListKind
from assistant.settings import Settings

NOTE_NO_LLM = "未配置语言模型（DUTY_LLM_BASE_URL），以下为清单原文摘要"
NOTE_EXCLUDED = "已略去上一轮回答中列出的事项"
REWRITE_RULES = frozenset({"scope", "carry", "continue"})  # heuristic rules a model may do better


@dataclass(frozen=True)
class Request:
    question: str
    towns: tuple[str, ...] = ()
    lists: tuple[ListKind, ...] = ()
    history: tuple[Turn, ...] = ()
    use_llm: bool | None = None  # None: the language model when one is configured

    @classmethod
    def of(
        cls,
        question: str,
        *,
        towns: Sequence[str] = (),
        lists: Sequence[ListKind | str] = (),
        history: Sequence[Turn] = (),
        use_llm: bool | None = None,
    ) -> Request:
        return cls(clean_question(question), tuple(towns), tuple(ListKind(k) for k in lists), tuple(history), use_llm)


@dataclass
class Prepared:
    """What both composers consume."""

    request: Request
    resolution: Resolution
    retrieval: Retrieval
    started: float = field(default_factory=time.perf_counter)
    deadline: float = float("inf")  # time.monotonic() by which an LLM answer must be done


class Response:
    """The text of an answer as it is produced; `answer` is the finished `Answer`."""

    def __init__(self, chunks: Generator[str, None, Answer]):
        self._chunks = chunks
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        if self._answer is not None:
            return
        self._answer = yield from self._chunks

    @property
    def answer(self) -> Answer:
        for _ in self:
            pass
        assert self._answer is not None
        return self._answer


class LanguageModel(Protocol):
    """A composer that writes answers with a language model (`chain.AnswerChain`)."""

    def rewrite(self, question: str, history: Sequence[Turn], seconds: float | None = None) -> str | None: ...

    def generate(
        self, prepared: Prepared, extractive: Answer, *, streaming: bool = True
    ) -> Generator[str, None, Answer]: ...


class Pipeline:
    def __init__(self, retriever: Retriever, settings: Settings, chain: LanguageModel | None = None):
        one_blas_thread()  # its idle threads would slow each question's embedding (see blas.py)
        self.retriever = retriever
        self.settings = settings
        self.chain = chain

    def run(self, request: Request, *, streaming: bool = True) -> Response:
        return Response(self._answer(request, streaming))

    def _answer(self, request: Request, streaming: bool) -> Generator[str, None, Answer]:
        use_llm = self.chain is not None and request.use_llm is not False and bool(request.question)
        prepared = self.prepare(request, use_llm=use_llm)
        extractive = self.extractive(prepared)
        if use_llm:
            assert self.chain is not None
            answer = yield from self.chain.generate(prepared, extractive, streaming=streaming)
        else:
            if request.use_llm:
                extractive.notes.append(NOTE_NO_LLM)
            answer = extractive
            yield answer.text
        answer.timings = {
            **answer.timings,
            "retrieval": prepared.retrieval.seconds,
            "total": time.perf_counter() - prepared.started,
        }
        return answer

    def prepare(self, request: Request, *, use_llm: bool = False) -> Prepared:
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.llm_deadline
        resolution = resolve(request.question, request.history, self.retriever.catalog)
        if use_llm and self.chain is not None and resolution.rule in REWRITE_RULES:
            # The rewrite may take at most half of what is left: the answer needs the rest.
            rewritten = self.chain.rewrite(request.question, request.history, (deadline - time.monotonic()) / 2)
            if rewritten:
                resolution = Resolution(request.question, rewritten, "llm", resolution.exclude)
        query = resolution.query if resolution.query is not None and not resolution.rewritten else None
        retrieval = self.retriever.retrieve(resolution.question, towns=request.towns, lists=request.lists, query=query)
        retrieval = narrow(retrieval, resolution.exclude, self.settings.top_k)
        return Prepared(request, resolution, retrieval, started, deadline)

    def extractive(self, prepared: Prepared) -> Answer:
        answer = compose(prepared.request.question, prepared.retrieval)
        resolution = prepared.resolution
        if resolution.rewritten:
            answer.resolved_question = resolution.question
            answer.followup_rule = resolution.rule
            if resolution.exclude:
                answer.excluded = list(resolution.exclude)
                answer.notes.append(NOTE_EXCLUDED)
        model = self.retriever.model
        intent = load_intent_model()
        answer.meta["models"] = {
            "relevance": model.version if model else "",
            "intent": intent.version if intent else "",
            "duties": self.retriever.classifier.version if self.retriever.classifier else "",
        }
        return answer
