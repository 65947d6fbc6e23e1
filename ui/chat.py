"""One conversation: a question in, a growing rendered reply out, earlier turns as context.

Kept free of Gradio so it can be tested directly; ui.app wires it to the page.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from assistant.answering.answer import Answer
from assistant.answering.followup import Turn
from assistant.feedback import Feedback
from assistant.service import Assistant
from ui.render import answer_html, error_html, plain_html, streaming_html

log = logging.getLogger(__name__)


@dataclass
class ChatTurn:
    id: str
    question: str
    towns: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()
    answer: Answer | None = None
    html: str = ""  # the reply as shown
    failed: bool = False


class Conversation:
    """Answers questions for the chat; `unavailable` explains why there is no assistant."""

    def __init__(self, assistant: Assistant | None, unavailable: str = ""):
        self.assistant = assistant
        self.unavailable = unavailable

    def reply(
        self, question: str, towns: Sequence[str], lists: Sequence[str], earlier: Sequence[ChatTurn]
    ) -> Iterator[ChatTurn]:
        """The new turn, yielded each time its reply grows; the last one is final."""
        turn = ChatTurn(uuid.uuid4().hex, question, tuple(towns), tuple(lists), html=streaming_html(""))
        if self.assistant is None:
            turn.html, turn.failed = error_html(self.unavailable), True
            yield turn
            return
        yield turn
        text = ""
        try:
            history = [Turn(t.question, t.answer) for t in earlier if not t.failed]
            response = self.assistant.stream(question, towns=tuple(towns), lists=tuple(lists), history=history)
            for piece in response:
                text += piece
                turn.html = streaming_html(text)
                yield turn
            turn.answer = response.answer
            turn.html = answer_html(turn.answer)
            yield turn
        except Exception as exc:  # shown to the user as a message; the trace goes to the log
            log.exception("answering %r failed", question)
            turn.html, turn.failed = error_html(failure_message(exc, bool(self.assistant.settings.llm_base_url))), True
            yield turn


def failure_message(exc: Exception, llm_configured: bool) -> str:
    name = type(exc).__name__
    if llm_configured and (isinstance(exc, (ConnectionError, TimeoutError)) or "Connect" in name or "Timeout" in name):
        return "无法连接大模型服务，请稍后重试；如果反复出现，请联系管理员。"
    return f"回答时出错（{name}: {exc}）。请重试；如果反复出现，请联系管理员。"


def messages(turns: Sequence[ChatTurn]) -> list[dict]:
    """The chat component's value: user question, then the reply, for every turn."""
    out = []
    for turn in turns:
        out.append({"role": "user", "content": plain_html(turn.question)})
        out.append({"role": "assistant", "content": turn.html})
    return out


def turn_of_message(index: int | Sequence[int]) -> int:
    """Which turn a chat message index (user and reply alternate) belongs to."""
    return (index if isinstance(index, int) else index[0]) // 2


def feedback_for(turn: ChatTurn, earlier: Sequence[ChatTurn]) -> Feedback:
    history = [t.question for t in earlier]
    if turn.answer is not None:
        return Feedback.for_answer(turn.id, turn.answer, history=history, towns=turn.towns, lists=turn.lists)
    return Feedback(
        turn.id, turn.question, answer="（回答失败）", history=history, towns=list(turn.towns), lists=list(turn.lists)
    )
