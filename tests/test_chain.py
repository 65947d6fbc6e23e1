"""The LLM chain end to end: real index, real ChatOpenAI client, a scripted server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from openai_stub import OpenAIStub, Reply, all_text, markers, user_text

from assistant.answering.answer import Answer, compose
from assistant.answering.chain import NOTE_INCONSISTENT, NOTE_NO_ROOM, NOTE_UNAVAILABLE, NOTE_UNCITED, pack
from assistant.answering.citations import MARKER
from assistant.answering.followup import Turn
from assistant.answering.pipeline import NOTE_NO_LLM
from assistant.answering.tokens import TokenCounter
from assistant.service import Assistant
from prompts import load

SLAUGHTER = "二工镇有人在家里私自宰羊卖肉，镇里该干点啥？"
ENUMERATION = "半截沟镇收回到县住建局的事项有哪些？"
OUT_OF_SCOPE = "如何申请专利？"


@pytest.fixture(scope="module")
def stub():
    with OpenAIStub() as server:
        yield server


@pytest.fixture(scope="module")
def llm(assistant, stub) -> Assistant:
    """The session's index, with a language model configured."""
    settings = assistant.settings.model_copy(
        update={"llm_base_url": stub.url, "llm_model": "stub-model", "llm_timeout": 1.5, "llm_max_retries": 0}
    )
    return Assistant(assistant.kb, settings)


@pytest.fixture(autouse=True)
def fresh_script(stub):
    stub.reset()
    yield
    stub.reset()


def cite_first(prefix: str = "乡镇要及时劝说制止，并配合上级核查", suffix: str = "。"):
    """A reply that cites the first item the request gave the model, whatever it is."""
    return lambda request: Reply(f"{prefix}{markers(request)[0]}{suffix}")


def extractive(assistant: Assistant, question: str) -> Answer:
    return assistant.ask(question, use_llm=False)


def test_cited_answer_is_parsed_and_grounded(llm, stub):
    stub.script(cite_first())
    answer = llm.ask(SLAUGHTER)
    offline = extractive(llm, SLAUGHTER)
    request = stub.requests[0]
    assert answer.generator == "llm" and not answer.abstained
    assert [i.id for i in answer.citations] == [offline.citations[0].id]
    assert answer.citations[0].citation in answer.text
    assert answer.citations[0].full_text() in user_text(request)  # the model saw the whole item
    assert answer.invalid_citations == [] and answer.meta["uncited_answer"] is False
    prompt = load("answer")
    assert answer.meta["prompt"] == "answer" and answer.meta["prompt_version"] == prompt.version
    assert answer.meta["model"] == "stub-model" and answer.meta["tokens"]["completion"] > 0
    assert request["model"] == "stub-model" and not request.get("stream")
    assert request["messages"][0]["role"] == "system" and "引用标记" in request["messages"][0]["content"]


def test_every_answer_records_the_prompt_version(llm, stub):
    stub.script(cite_first(), lambda request: Reply("概括：这些事项都由县住建局承接。"))
    for question in (SLAUGHTER, ENUMERATION):
        meta = llm.ask(question).meta
        assert meta["prompt_version"] == load(meta["prompt"]).version and meta["prompt_digest"]


def test_prompts_hold_no_example_item_number():
    for name in ("answer", "summary", "followup"):
        prompt = load(name)
        text = prompt.system + prompt.user
        assert not re.search(r"第\s*[0-9０-９零一二两三四五六七八九十百]+\s*[项条]", text), name
        assert not MARKER.search(text), name


def test_invalid_citations_are_removed_and_reported(llm, stub):
    given: list[str] = []

    def reply(request):
        given.extend(markers(request))
        return Reply(
            f"要劝说制止{markers(request)[0]}。另见〔二工镇·配合履职·第999项〕和【半截沟镇·配合履职·第22项】。"
        )

    stub.script(reply)
    answer = llm.ask(SLAUGHTER)
    assert "半截沟镇·配合履职·第22项" not in "".join(given)  # a real item, but not one the model was given
    assert answer.invalid_citations == ["二工镇:coordinated:999", "半截沟镇:coordinated:22"]
    assert "第999项" not in answer.text and "半截沟镇" not in answer.text
    assert [i.citation for i in answer.citations] == [given[0]]
    assert any("2处" in note for note in answer.notes)
    assert answer.to_json()["invalid_citations"] == answer.invalid_citations


def test_uncited_answer_is_flagged(llm, stub):
    stub.script(Reply("镇里要先劝说制止，再报告县里处理。"))
    answer = llm.ask(SLAUGHTER)
    assert answer.generator == "llm"
    assert answer.meta["uncited_answer"] is True and NOTE_UNCITED in answer.notes
    assert [i.id for i in answer.citations] == [i.id for i in extractive(llm, SLAUGHTER).citations]


def test_model_declining_becomes_an_abstention(llm, stub):
    stub.script(Reply("现有履职事项清单中没有找到与这个问题相关的事项，无法依据清单回答。"))
    answer = llm.ask(SLAUGHTER)
    assert answer.abstained and answer.citations == [] and answer.generator == "llm"
    assert answer.related  # the items it was given stay visible as related


def test_abstained_retrieval_never_calls_the_model(llm, stub):
    answer = llm.ask(OUT_OF_SCOPE)
    assert answer.abstained and answer.citations == []
    assert stub.requests == [] and answer.meta["llm_called"] is False


@pytest.mark.parametrize(
    "reply",
    [
        Reply("迟到的回答", delay=4),
        Reply(raw="this is not json"),
        Reply(raw='{"id": "x", "object": "chat.completion"}'),
        Reply(raw='{"error": {"message": "model overloaded"}}', status=503),
        Reply(""),
    ],
    ids=["timeout", "not-json", "no-choices", "server-error", "empty"],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["ask", "stream"])
def test_failures_fall_back_to_the_extractive_answer(llm, stub, reply, streaming):
    stub.script(reply)
    if streaming:
        response = llm.stream(SLAUGHTER)
        chunks, answer = list(response), response.answer
    else:
        chunks, answer = [], llm.ask(SLAUGHTER)
    offline = extractive(llm, SLAUGHTER)
    assert isinstance(answer, Answer) and answer.generator == "extractive"
    assert answer.text == offline.text and [i.id for i in answer.citations] == [i.id for i in offline.citations]
    assert NOTE_UNAVAILABLE in answer.notes and answer.meta["llm_error"]
    if streaming:
        assert offline.text in "".join(chunks)


def test_unreachable_server_falls_back(assistant):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    settings = assistant.settings.model_copy(
        update={"llm_base_url": f"http://127.0.0.1:{port}/v1", "llm_timeout": 1.0, "llm_max_retries": 0}
    )
    answer = Assistant(assistant.kb, settings).ask(SLAUGHTER)
    assert answer.generator == "extractive" and NOTE_UNAVAILABLE in answer.notes
    assert "Connection" in answer.meta["llm_error"]


def test_streaming_yields_tokens_in_order(llm, stub):
    def reply(request):
        marker = markers(request)[0]
        middle = len(marker) // 2
        return Reply(pieces=["乡镇", "要劝说", "制止", marker[:middle], marker[middle:], "，并报告县里", "。"])

    stub.script(reply)
    response = llm.stream(SLAUGHTER)
    chunks, answer = list(response), response.answer
    assert stub.requests[0]["stream"] is True
    assert isinstance(answer, Answer) and answer.generator == "llm"
    assert all(isinstance(c, str) for c in chunks) and len(chunks) >= 5
    assert "".join(chunks) == answer.text
    assert chunks[:3] == ["乡镇", "要劝说", "制止"]  # token by token, in the server's order
    assert any(c == answer.citations[0].citation for c in chunks)  # a marker is shown only once complete


def test_set_answer_keeps_the_computed_items(llm, stub):
    offline = extractive(llm, ENUMERATION)
    count = len(offline.citations)
    stub.script(lambda request: Reply(f"共{count}项，都已收回由县住建局承接，例如{markers(request)[0]}。"))
    answer = llm.ask(ENUMERATION)
    assert answer.generator == "llm" and answer.meta["mode"] == "set"
    assert [i.id for i in answer.citations] == [i.id for i in offline.citations]  # the model cited one
    assert answer.text.endswith(offline.text)
    assert load("summary").system in all_text(stub.requests[0])


def test_set_answer_with_a_wrong_count_falls_back(llm, stub):
    offline = extractive(llm, ENUMERATION)
    stub.script(Reply(f"共{len(offline.citations) + 3}项。"))
    answer = llm.ask(ENUMERATION)
    assert answer.generator == "extractive" and answer.text == offline.text
    assert NOTE_INCONSISTENT in answer.notes


def test_token_budget_keeps_whole_items(llm):
    items = extractive(llm, ENUMERATION).citations
    count = llm.pipeline.chain.count
    blocks = [item.full_text() for item in items]
    budget = sum(count(b + "\n\n") for b in blocks[:3]) + count(blocks[3]) // 2  # room for 3½ items
    packed = pack(items, budget, count, lambda item: item.full_text())
    assert packed.items == items[:3] and packed.omitted == len(items) - 3
    assert packed.context == "\n\n".join(blocks[:3]) and packed.tokens <= budget
    assert pack(items, count(blocks[0]) - 1, count, lambda item: item.full_text()).items == []


def test_small_budget_sends_only_whole_items(assistant, stub):
    question = "村里有人私自宰羊，镇里该做什么？"
    first, second = extractive(assistant, question).citations[:2]
    count = TokenCounter(assistant.settings.llm_encoding, assistant.settings.tiktoken_dir)
    budget = count(first.full_text() + "\n\n") + count(second.full_text()) // 2
    settings = assistant.settings.model_copy(
        update={"llm_base_url": stub.url, "llm_context_tokens": budget, "llm_timeout": 1.5, "llm_max_retries": 0}
    )
    stub.script(cite_first())
    answer = Assistant(assistant.kb, settings).ask(question)
    sent = user_text(stub.requests[0])
    assert first.full_text() in sent and second.citation not in sent
    assert answer.meta["packed"] == 1 and answer.meta["omitted"] == 1
    assert answer.meta["tokens"]["context"] <= budget


def test_no_item_fitting_the_budget_means_no_model_call(assistant, stub):
    settings = assistant.settings.model_copy(update={"llm_base_url": stub.url, "llm_context_tokens": 100})
    answer = Assistant(assistant.kb, settings).ask(SLAUGHTER)
    assert stub.requests == [] and answer.generator == "extractive" and NOTE_NO_ROOM in answer.notes


def test_followup_rewrite_sends_the_history(llm, stub):
    first = extractive(llm, "二工镇私屠滥宰归谁管？")
    stub.script(Reply("半截沟镇私屠滥宰归谁管？"), cite_first("由县农业农村局牵头"))
    answer = llm.ask("那半截沟镇呢？", history=[Turn("二工镇私屠滥宰归谁管？", first)])
    rewrite = all_text(stub.requests[0])
    assert "二工镇私屠滥宰归谁管？" in rewrite and "那半截沟镇呢？" in rewrite
    assert first.citations[0].citation in rewrite  # the previous answer's items go along
    assert answer.resolved_question == "半截沟镇私屠滥宰归谁管？" and answer.followup_rule == "llm"
    assert answer.citations and {i.town for i in answer.citations} == {"半截沟镇"}


def test_followup_falls_back_to_the_rules_when_the_rewrite_fails(llm, stub):
    first = extractive(llm, "二工镇私屠滥宰归谁管？")
    stub.script(Reply(raw="garbage"), cite_first("由县农业农村局牵头"))
    answer = llm.ask("那半截沟镇呢？", history=[Turn("二工镇私屠滥宰归谁管？", first)])
    assert answer.resolved_question == "半截沟镇私屠滥宰归谁管？" and answer.followup_rule == "scope"
    assert answer.generator == "llm" and {i.town for i in answer.citations} == {"半截沟镇"}


def test_self_contained_question_is_not_rewritten(llm, stub):
    first = extractive(llm, "二工镇私屠滥宰归谁管？")
    stub.script(cite_first())
    answer = llm.ask(SLAUGHTER, history=[Turn("二工镇私屠滥宰归谁管？", first)])
    assert len(stub.requests) == 1 and answer.resolved_question == ""


def test_no_llm_configured_answers_exactly_as_before(assistant):
    for question in (SLAUGHTER, ENUMERATION, OUT_OF_SCOPE, "二工镇配合履职事项第22项是什么？"):
        answer = assistant.ask(question)
        assert answer.to_json() == compose(question, assistant.retrieve(question)).to_json()
        assert answer.generator == "extractive" and answer.notes == [] and set(answer.meta) == {"models"}
        assert list(assistant.stream(question))[0] == answer.text


def test_forcing_the_llm_without_one_configured_says_so(assistant):
    answer = assistant.ask(SLAUGHTER, use_llm=True)
    assert answer.generator == "extractive" and NOTE_NO_LLM in answer.notes


def test_no_llm_flag_skips_a_configured_model(llm, stub):
    answer = llm.ask(SLAUGHTER, use_llm=False)
    assert answer.generator == "extractive" and stub.requests == []


def run_cli(args: list[str], home, stdin: str = "", **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DUTY_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_cli_ask_uses_the_configured_model_unless_told_not_to(built_settings, stub):
    stub.fallback = cite_first("命令行：乡镇要劝说制止")
    try:
        configured = {"DUTY_LLM_BASE_URL": stub.url, "DUTY_LLM_TIMEOUT": "10"}
        done = run_cli(["ask", "--json", "-"], built_settings.home, f"{SLAUGHTER}\n{OUT_OF_SCOPE}\n", **configured)
        pretty = run_cli(["ask", SLAUGHTER], built_settings.home, **configured)
        offline = run_cli(["ask", "--no-llm", "--json", SLAUGHTER], built_settings.home, **configured)
    finally:
        stub.fallback = OpenAIStub.fallback
    assert done.returncode == pretty.returncode == offline.returncode == 0, done.stderr + pretty.stderr
    llm_record, abstained = (json.loads(line) for line in done.stdout.splitlines())
    assert llm_record["generator"] == "llm" and llm_record["answer"].startswith("命令行：乡镇要劝说制止")
    assert llm_record["citations"] and llm_record["invalid_citations"] == []
    assert abstained["abstained"] and abstained["generator"] == "extractive"
    assert "命令行：乡镇要劝说制止" in pretty.stdout and "引用事项" in pretty.stdout
    assert json.loads(offline.stdout)["generator"] == "extractive"
    assert len(stub.requests) == 2  # one per answered question; none for the abstention or --no-llm
