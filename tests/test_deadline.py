"""A stuck or runaway model must not hold an answer (issue 14, item 4): every LLM answer ends
within `llm_deadline` and `llm_max_chars`, with the extractive answer and a note otherwise.

Real index, real ChatOpenAI client, the scripted OpenAI-compatible stub on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from openai_stub import OpenAIStub, Reply, markers

from assistant.answering.chain import NOTE_DEADLINE, NOTE_TOO_LONG, ModelFailure, bounded
from assistant.answering.followup import Turn
from assistant.service import Assistant

QUESTION = "二工镇有人在家里私自宰羊卖肉，镇里该干点啥？"
DEADLINE = 2.0
SLACK = 2.5  # seconds beyond the deadline for retrieval, the fallback and a loaded machine


@pytest.fixture(scope="module")
def stub():
    with OpenAIStub() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_script(stub):
    stub.reset()
    yield
    stub.reset()


@pytest.fixture(scope="module")
def llm(assistant, stub) -> Assistant:
    """A configured model with a short deadline, and timeouts/retries that alone would take far longer."""
    settings = assistant.settings.model_copy(
        update={
            "llm_base_url": stub.url,
            "llm_model": "stub-model",
            "llm_timeout": 30.0,
            "llm_max_retries": 3,
            "llm_deadline": DEADLINE,
            "llm_max_chars": 500,
        }
    )
    return Assistant(assistant.kb, settings)


def _timed(run):
    started = time.monotonic()
    result = run()
    return result, time.monotonic() - started


FOREVER = Reply("镇里要劝说制止。", forever=True, interval=0.05)
NEVER = Reply("迟到的回答", delay=60)
RUNAWAY = Reply("很长" * 20_000, pieces=["很长" * 100] * 200)  # ignores max_tokens


@pytest.mark.parametrize(
    "reply", [FOREVER, NEVER, RUNAWAY], ids=["streams-forever", "never-answers", "ignores-max-tokens"]
)
@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "ask"])
def test_every_answer_arrives_within_the_deadline(llm, stub, reply, streaming):
    offline = llm.ask(QUESTION, use_llm=False)
    stub.script(reply)
    if streaming:
        answer, seconds = _timed(lambda: llm.stream(QUESTION).answer)
    else:
        answer, seconds = _timed(lambda: llm.ask(QUESTION))
    assert seconds < DEADLINE + SLACK, f"{seconds:.1f} s"
    assert answer.generator == "extractive" and answer.text == offline.text
    assert [i.id for i in answer.citations] == [i.id for i in offline.citations]
    assert answer.notes[-1] == (NOTE_TOO_LONG.format(500) if reply is RUNAWAY else NOTE_DEADLINE)
    assert len(stub.requests) == 1  # no retry starts over inside the deadline


def test_a_slow_follow_up_rewrite_leaves_time_for_the_answer(llm, stub):
    first = llm.ask(QUESTION, use_llm=False)
    stub.script(NEVER, lambda request: Reply(f"由县农业农村局牵头{markers(request)[0]}。"))
    answer, seconds = _timed(lambda: llm.ask("那半截沟镇呢？", history=[Turn(QUESTION, first)]))
    assert seconds < DEADLINE + SLACK
    assert answer.citations


def test_a_model_within_the_limits_is_unaffected(llm, stub):
    stub.script(lambda request: Reply(f"乡镇要及时劝说制止{markers(request)[0]}。", interval=0.01))
    answer = llm.ask(QUESTION)
    assert answer.generator == "llm" and not answer.notes


def test_bounded_stops_consuming_and_closes_the_stream():
    closed = threading.Event()
    produced = []

    def endless():
        try:
            while True:
                produced.append(1)
                yield "字"
        finally:
            closed.set()

    with pytest.raises(ModelFailure) as caught:
        list(bounded(endless, 5.0, 100))
    assert caught.value.note == NOTE_TOO_LONG.format(100)
    assert closed.wait(2.0)  # the helper closed the generator (and with it the HTTP response)
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count  # nothing is consumed after the stop


def test_the_json_stream_is_not_blocked_by_a_stuck_model(built_settings, stub):
    """`ask --json -`: a question whose model never finishes must not hold the next lines."""
    stub.fallback = lambda request: FOREVER
    try:
        env = {
            **os.environ,
            "DUTY_HOME": str(built_settings.home),
            "HF_HUB_OFFLINE": "1",
            "DUTY_LLM_BASE_URL": stub.url,
            "DUTY_LLM_DEADLINE": str(DEADLINE),
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "ui.cli", "ask", "--json", "-"],
            input=f"{QUESTION}\n{QUESTION}\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        elapsed = time.monotonic() - started
    finally:
        stub.fallback = OpenAIStub.fallback
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2 and all(r["generator"] == "extractive" and r["citations"] for r in records)
    assert elapsed < 2 * DEADLINE + 30  # process start and model load included
