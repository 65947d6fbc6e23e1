"""LLM answers through a LangChain (LCEL) chain: grounded, cited, validated, streamed.

The pipeline (`pipeline.py`) resolves, understands and retrieves; this composer takes the
prepared context and the extractive answer and

    packs whole items into a tiktoken budget → prompt | ChatOpenAI → checks citation markers

What the model may and may not decide:
- it phrases the answer, and for single-item questions chooses which given items to cite;
- it never adds an item: every cited id must be one of the items it was given;
- for computed sets (enumerations, counts, comparisons) it only writes a short overview; the
  count, the listed items and the citations are the computed ones;
- when retrieval abstained it is not asked at all.
Whenever the model is unreachable, slow or returns garbage, the user gets the extractive
answer with a visible note instead of an error.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langchain_core.output_parsers import StrOutputParser
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from assistant.answering.answer import ABSTAIN_TEXT, Answer
from assistant.answering.citations import MARKER, Checked, CitationFilter
from assistant.answering.followup import Turn
from assistant.answering.query import Intent, chinese_number
from assistant.answering.tokens import TokenCounter
from assistant.items import DutyItem
from assistant.settings import Settings
from prompts import Prompt, load

if TYPE_CHECKING:
    from assistant.answering.pipeline import Prepared

log = logging.getLogger(__name__)

NOTE_UNAVAILABLE = "语言模型暂不可用，以下为清单原文摘要"
NOTE_NO_ROOM = "事项内容超出语言模型的篇幅限制，以下为清单原文摘要"
NOTE_UNCITED = "语言模型的回答没有标注依据的事项，请以下列清单原文为准"
NOTE_INVALID = "已删除回答中{}处不属于检索结果的引用"
NOTE_INCONSISTENT = "语言模型的回答与清单计算结果不一致，以下为清单原文摘要"
NOTE_DEADLINE = "语言模型未能在规定时间内完成回答，以下为清单原文摘要"
NOTE_TOO_LONG = "语言模型的回答超过{}字，已停止生成，以下为清单原文摘要"
# Phrases with which the model says the given items do not answer the question.
DECLINES = ("无法依据清单回答", "没有找到与这个问题相关", "清单没有涉及", "清单中没有涉及", "清单未涉及")
HISTORY_TURNS = 3
REWRITE_MAX_CHARS = 200


class ModelFailure(RuntimeError):
    """The model's reply cannot be used; `note` tells the user why they see the extractive answer."""

    def __init__(self, reason: str, note: str = NOTE_UNAVAILABLE):
        super().__init__(reason)
        self.note = note


@dataclass
class Packed:
    """The items that fit the budget, highest ranked first, each whole."""

    items: list[DutyItem]
    context: str
    tokens: int
    omitted: int


def pack(
    items: Sequence[DutyItem], budget: int, count: Callable[[str], int], render: Callable[[DutyItem], str]
) -> Packed:
    """Whole items in rank order until the next one would exceed the budget; never a cut item."""
    blocks: list[str] = []
    used = 0
    for item in items:
        block = render(item)
        cost = count(block + "\n\n")
        if used + cost > budget:
            break
        blocks.append(block)
        used += cost
    return Packed(list(items[: len(blocks)]), "\n\n".join(blocks), used, len(items) - len(blocks))


class AnswerChain:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.count = TokenCounter(settings.llm_encoding, settings.tiktoken_dir)
        # The answer's deadline is enforced around the stream (see `bounded`); these only keep
        # an abandoned request from outliving it by much: no attempt, nor all retries
        # together, last longer than the deadline.
        timeout = min(settings.llm_timeout, settings.llm_deadline)
        self.model = ChatOpenAI(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=SecretStr(settings.llm_api_key),
            timeout=timeout,
            max_retries=min(settings.llm_max_retries, max(0, int(settings.llm_deadline // timeout) - 1)),
            temperature=settings.llm_temperature,
            max_completion_tokens=settings.llm_max_tokens,
            use_responses_api=False,
        )
        self.prompts: dict[str, Prompt] = {name: load(name) for name in ("answer", "summary", "followup")}
        self.generators = {mode: self.prompts[name].chat_template() | self.model for mode, name in MODES.items()}
        self.rewriter = self.prompts["followup"].chat_template() | self.model | StrOutputParser()

    def rewrite(self, question: str, history: Sequence[Turn], seconds: float | None = None) -> str | None:
        """The model's self-contained version of a follow-up, or None (the rules then stand)."""
        variables = {"history": render_history(history), "question": question}
        try:
            reply = "".join(
                bounded(
                    lambda: iter([self.rewriter.invoke(variables)]),
                    self.settings.llm_deadline if seconds is None else seconds,
                    20 * REWRITE_MAX_CHARS,
                )
            )
        except Exception as exc:  # any failure: the rule-based resolution is used
            log.warning("follow-up rewrite failed: %s: %s", type(exc).__name__, exc)
            return None
        line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
        line = re.sub(r"^(?:改写后的问题|改写|问题)[:：]\s*", "", line).strip("\"'“”「」 ")
        return line if 0 < len(line) <= REWRITE_MAX_CHARS else None

    # -- composing -------------------------------------------------------------------------

    def generate(
        self, prepared: Prepared, extractive: Answer, *, streaming: bool = True
    ) -> Generator[str, None, Answer]:
        """Streams the checked answer text; returns the finished Answer (the extractive one, with
        a note, whenever the model is not asked or fails)."""
        retrieval = prepared.retrieval
        if retrieval.abstained:
            extractive.meta["llm_called"] = False
            yield extractive.text
            return extractive
        mode = "set" if retrieval.complete and retrieval.query.intent is not Intent.LOOKUP else "items"
        render = _title_line if mode == "set" else DutyItem.full_text
        packed = pack(retrieval.cited, self.settings.llm_context_tokens, self.count, render)
        if not packed.items:
            extractive.notes.append(NOTE_NO_ROOM)
            yield extractive.text
            return extractive
        answer = yield from self._generated(prepared, mode, packed, extractive, streaming)
        if answer.generator != "llm":
            yield answer.text
        return answer

    def _generated(
        self, prepared: Prepared, mode: str, packed: Packed, extractive: Answer, streaming: bool
    ) -> Generator[str, None, Answer]:
        """Streams the checked model text; returns the validated answer, or the extractive one on failure."""
        prompt = self.prompts[MODES[mode]]
        variables = self._variables(prepared, mode, packed, extractive)
        usage: dict = {}
        checker = CitationFilter({item.id: item for item in packed.items})
        emitted = False
        timings = extractive.timings
        try:
            pieces = bounded(
                lambda: self._generate(mode, variables, streaming, usage),
                prepared.deadline - time.monotonic(),
                self.settings.llm_max_chars,
            )
            for piece in pieces:
                timings.setdefault("first_token", time.perf_counter() - prepared.started)
                delta = checker.feed(piece)
                if delta:
                    emitted = True
                    yield delta
            checked, tail = checker.finish()
            answer = self._validated(prepared, mode, packed, checked, extractive)
            answer.timings = timings
            if tail:
                yield tail
            if mode == "set":
                yield "\n\n" + extractive.text
        except Exception as exc:  # the user gets the extractive answer, never an error
            log.warning("LLM answer failed: %s: %s", type(exc).__name__, exc)
            answer = extractive
            answer.notes.append(exc.note if isinstance(exc, ModelFailure) else NOTE_UNAVAILABLE)
            answer.meta["llm_error"] = f"{type(exc).__name__}: {exc}"
            if emitted:
                yield f"\n\n（{answer.notes[-1]}）\n\n"
        answer.meta.update(
            prompt.meta,
            model=self.settings.llm_model,
            mode=mode,
            packed=len(packed.items),
            omitted=packed.omitted,
            tokens={
                "context": packed.tokens,
                "prompt": self.count(prompt.system.format(**variables) + prompt.user.format(**variables)),
                "completion": self.count(checker.raw),
                **({"server": usage} if usage else {}),
            },
        )
        answer.meta.setdefault("uncited_answer", False)
        return answer

    def _variables(self, prepared: Prepared, mode: str, packed: Packed, extractive: Answer) -> dict:
        question = prepared.resolution.question
        if mode == "set":
            return {
                "scope": extractive.text.splitlines()[0],
                "count": len(prepared.retrieval.cited),
                "context": packed.context + (f"\n（另有{packed.omitted}项未列出）" if packed.omitted else ""),
                "question": question,
            }
        return {"abstain_text": ABSTAIN_TEXT, "context": packed.context, "question": question}

    def _generate(self, mode: str, variables: dict, streaming: bool, usage: dict) -> Iterator[str]:
        """The model's text as it arrives (one piece when not streaming)."""
        runnable = self.generators[mode]
        received = False
        if streaming:
            for chunk in runnable.stream(variables):
                usage.update(chunk.usage_metadata or {})
                text = _text(chunk.content)
                if text:
                    received = True
                    yield text
        else:
            message = runnable.invoke(variables)
            usage.update(message.usage_metadata or {})
            text = _text(message.content)
            received = bool(text.strip())
            yield text
        if not received:
            raise ModelFailure("empty reply")

    def _validated(self, prepared: Prepared, mode: str, packed: Packed, checked: Checked, extractive: Answer) -> Answer:
        """The model's answer with its citations checked; raises ModelFailure to fall back."""
        retrieval = prepared.retrieval
        text = checked.text.strip()
        if not text:
            raise ModelFailure("the reply held nothing but citation markers")
        declined = any(phrase in text for phrase in DECLINES) and not checked.cited
        answer = Answer(
            extractive.question,
            text,
            retrieval=retrieval,
            generator="llm",
            invalid_citations=checked.invalid,
            notes=list(extractive.notes),
            meta=dict(extractive.meta),
            resolved_question=extractive.resolved_question,
            followup_rule=extractive.followup_rule,
            excluded=list(extractive.excluded),
        )
        if checked.invalid:
            answer.notes.append(NOTE_INVALID.format(len(checked.invalid)))
        if mode == "set":
            if declined or not _counts_agree(text, extractive.text):
                raise ModelFailure("the overview contradicts the computed set", NOTE_INCONSISTENT)
            answer.text = f"{text}\n\n{extractive.text}"
            answer.citations = list(retrieval.cited)
        elif declined:
            if retrieval.complete:
                raise ModelFailure("the model declined a computed lookup", NOTE_INCONSISTENT)
            answer.abstained = True
            answer.related = list(packed.items)[:3]
        elif not checked.cited:
            answer.citations = list(retrieval.cited if retrieval.complete else packed.items)
            answer.notes.append(NOTE_UNCITED)
            answer.meta["uncited_answer"] = True
        else:
            answer.citations = list(retrieval.cited) if retrieval.complete else checked.cited
        return answer


MODES = {"items": "answer", "set": "summary"}  # chain mode → prompt name


def bounded(produce: Callable[[], Iterator[str]], seconds: float, max_chars: int) -> Iterator[str]:
    """The pieces `produce()` yields, until it ends, `seconds` pass or `max_chars` is exceeded.

    An HTTP client's timeouts bound each read, not the whole answer: a server that trickles
    tokens forever, or never sends the first one while retries start over, would hold a
    worker indefinitely. So the stream is consumed on a helper thread and waited for with
    the remaining time; on a deadline or an overlong answer the consumer raises ModelFailure
    at once and the helper stops and closes the stream (ending the HTTP request) as soon as
    its next read returns, which the client's own timeout bounds.
    """
    pieces: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        stream = None
        try:
            stream = produce()
            for piece in stream:
                if stop.is_set():
                    break
                pieces.put(("piece", piece))
            pieces.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which decides
            pieces.put(("error", exc))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # closing a broken stream may fail; nothing waits on it
                    log.debug("closing the model stream failed", exc_info=True)

    threading.Thread(target=work, name="llm-stream", daemon=True).start()
    end = time.monotonic() + seconds
    received = 0
    try:
        while True:
            try:
                kind, value = pieces.get(timeout=max(end - time.monotonic(), 0.0))
            except queue.Empty:
                raise ModelFailure(f"no complete answer within {seconds:.1f} s", NOTE_DEADLINE) from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            received += len(value)
            if received > max_chars:
                raise ModelFailure(f"answer longer than {max_chars} characters", NOTE_TOO_LONG.format(max_chars))
            yield value
    finally:
        stop.set()


def render_history(history: Sequence[Turn]) -> str:
    """The last turns as the rewriting prompt shows them: questions and the items each answer cited."""
    lines = []
    for turn in list(history)[-HISTORY_TURNS:]:
        lines.append(f"用户：{turn.question}")
        if turn.answer is None:
            continue
        if turn.answer.abstained or not turn.answer.citations:
            lines.append("助手：清单中没有找到相关事项。")
        else:
            cited = "；".join(
                f"{i}. {item.citation}{item.title}" for i, item in enumerate(turn.answer.citations[:8], 1)
            )
            lines.append(f"助手引用的事项：{cited}")
    return "\n".join(lines)


def _title_line(item: DutyItem) -> str:
    """One line per item of a computed set: marker, title, and the departments involved."""
    departments = "、".join(item.involved_departments)
    return f"{item.citation}{item.title}" + (f"（{departments}）" if departments else "")


def _text(content) -> str:
    """Message content as text (some servers send a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p if isinstance(p, str) else p.get("text", "") for p in content if isinstance(p, (str, dict)))
    raise ModelFailure(f"unexpected content type {type(content).__name__}")


_COUNTED = re.compile(r"([0-9]+|[零一二两三四五六七八九十百]+)\s*(?:项|条|件|对)")


def _counts_agree(summary: str, computed: str) -> bool:
    """Every count the overview states must appear among the computed answer's counts."""
    allowed = {chinese_number(n) for n in _COUNTED.findall(MARKER.sub("", computed))}
    stated = {chinese_number(n) for n in _COUNTED.findall(MARKER.sub("", summary))}
    return stated <= allowed
