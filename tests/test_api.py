"""The service as other systems see it: a real uvicorn server on 127.0.0.1, the official `openai`
client and httpx; keys made by the real `keys add` command; `serve` as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from assistant.access import AccessStore
from ui.api import create_app

CLI = [sys.executable, "-m", "ui.cli"]
SLAUGHTER = "二工镇私自宰羊归谁管？"
FIGURE = "低保一个月能领多少钱？"
FOLLOWUP = "那半截沟镇呢？"
ITEM = "二工镇:coordinated:22"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """uvicorn in a thread, on a free loopback port (signal handlers stay with the main thread)."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def run_cli(args, home: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DUTY_HOME": str(home), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def open_server(assistant, built_settings, tmp_path_factory):
    """No keys, loopback: the API and the web app, as `serve` builds them."""
    settings = built_settings.model_copy(
        update={
            "api_keys_file": tmp_path_factory.mktemp("open") / "access.json",
            "api_rate_limit": "10000/minute",
            "api_max_body_bytes": 4096,
        }
    )
    with Server(create_app(assistant, settings)) as server:
        yield server


@pytest.fixture(scope="module")
def http(open_server):
    with httpx.Client(base_url=open_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def client(open_server):
    return openai.OpenAI(base_url=open_server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two keys made by the real CLI; the file it writes is what the keyed server reads."""
    home = tmp_path_factory.mktemp("keyed")
    made = {}
    for name in ("值班室", "hotline"):
        result = run_cli(["keys", "add", name], home)
        assert result.returncode == 0, result.stderr
        made[name] = result.stdout.strip()
    return home / "access.json", made


@pytest.fixture(scope="module")
def keyed_server(assistant, built_settings, keys):
    path, _ = keys
    settings = built_settings.model_copy(update={"api_keys_file": path, "api_rate_limit": "5/minute"})
    with Server(create_app(assistant, settings, web_login=True)) as server:
        yield server


def error_of(response: httpx.Response, status: int, param: str | None = "") -> dict:
    """The response is the JSON error we promise: status, OpenAI shape, the field named, no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if param != "":
        assert error["param"] == param, error
    return error


# -- OpenAI-compatible chat with the official client ---------------------------------------------


def test_models_lists_one_model(client):
    assert [m.id for m in client.models.list()] == ["duty-assistant"]


def test_chat_completion_carries_markers_and_structured_citations(client):
    response = client.chat.completions.create(model="duty-assistant", messages=[{"role": "user", "content": SLAUGHTER}])
    text = response.choices[0].message.content
    assert "〔二工镇·配合履职·第22项〕" in text and response.choices[0].finish_reason == "stop"
    citations = response.model_extra["citations"]
    assert {"town": "二工镇", "list": "coordinated", "number": 22}.items() <= citations[0].items()
    assert all(f"〔{c['town']}·" in text for c in citations)
    assert response.model_extra["abstained"] is False and response.model_extra["generator"] == "extractive"


def test_streamed_chat_ends_with_citations_then_done(client, http):
    chunks = list(
        client.chat.completions.create(
            model="duty-assistant", messages=[{"role": "user", "content": SLAUGHTER}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "〔二工镇·配合履职·第22项〕" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and not last.choices[0].delta.content
    assert any(c["number"] == 22 and c["town"] == "二工镇" for c in last.model_extra["citations"])
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])
    # the wire format itself: SSE data lines, the last one [DONE]
    body = {"model": "duty-assistant", "messages": [{"role": "user", "content": SLAUGHTER}], "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["citations"]


def test_a_declined_answer_gives_chat_clients_its_related_items(client):
    """The figure decline says "见相关事项": a chat tool that shows only the text must see them."""
    messages = [{"role": "user", "content": FIGURE}]
    response = client.chat.completions.create(model="duty-assistant", messages=messages)
    text, extra = response.choices[0].message.content, response.model_extra
    assert extra["abstained"] and extra["citations"] == [] and extra["related"]
    block = text.split("相关事项（仅供参考，不是回答的依据）：")[1]
    assert all(f"{r['town']}·" in block and f"第{r['number']}项「{r['title']}」" in block for r in extra["related"])
    assert "〔" not in text, "written out, the related items must not read as citations"
    chunks = list(client.chat.completions.create(model="duty-assistant", messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].model_extra["related"] == extra["related"]


def test_follow_up_in_a_two_turn_conversation_cites_the_other_township(client):
    first = client.chat.completions.create(model="duty-assistant", messages=[{"role": "user", "content": SLAUGHTER}])
    messages = [
        {"role": "user", "content": SLAUGHTER},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": FOLLOWUP},
    ]
    second = client.chat.completions.create(model="duty-assistant", messages=messages)
    cited = second.model_extra["citations"]
    assert cited and all(c["town"] == "半截沟镇" for c in cited)
    assert "私屠滥宰" in cited[0]["title"]
    assert "〔半截沟镇·" in second.choices[0].message.content
    # without the history the same words name no topic: the answer must differ
    alone = client.chat.completions.create(model="duty-assistant", messages=[{"role": "user", "content": FOLLOWUP}])
    assert alone.model_extra["citations"] != cited
    # a client that drops our replies (only user turns) gets the same answer: history is re-derived
    users_only = client.chat.completions.create(model="duty-assistant", messages=[messages[0], messages[2]])
    assert users_only.model_extra["citations"] == cited


def test_content_parts_and_system_messages_are_accepted(client):
    response = client.chat.completions.create(
        model="duty-assistant",
        messages=[
            {"role": "system", "content": "你是助手"},
            {"role": "user", "content": [{"type": "text", "text": SLAUGHTER}]},
        ],
        temperature=0.3,
    )
    assert response.model_extra["citations"][0]["number"] == 22


def test_openai_client_sees_bad_requests_as_bad_requests(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="duty-assistant", messages=[{"role": "user", "content": "   "}])
    assert caught.value.body["param"] == "messages[0].content"


# -- the JSON API with httpx ---------------------------------------------------------------------


def test_ask_returns_the_ask_json_contract(http, built_settings):
    question = "出具婚姻状况证明还归镇里吗？"
    response = http.post("/v1/ask", json={"question": question})
    assert response.status_code == 200, response.text
    cli = run_cli(["ask", "--json", question], built_settings.home)
    assert cli.returncode == 0, cli.stderr
    assert response.json() == json.loads(cli.stdout)
    assert response.json()["citations"][0]["list"] == "withdrawn"


def test_ask_with_filters_and_history(http):
    filtered = http.post("/v1/ask", json={"question": "私自宰羊归谁管？", "towns": ["半截沟镇"]}).json()
    assert filtered["citations"] and {c["town"] for c in filtered["citations"]} == {"半截沟镇"}
    first = http.post("/v1/ask", json={"question": SLAUGHTER}).json()
    followed = http.post("/v1/ask", json={"question": FOLLOWUP, "history": [first]}).json()
    assert {c["town"] for c in followed["citations"]} == {"半截沟镇"}
    as_strings = http.post("/v1/ask", json={"question": FOLLOWUP, "history": [SLAUGHTER]}).json()
    assert as_strings["citations"] == followed["citations"]
    withdrawn = http.post("/v1/ask", json={"question": "二工镇有哪些事项？", "lists": ["withdrawn"]}).json()
    assert withdrawn["citations"] and {c["list"] for c in withdrawn["citations"]} == {"withdrawn"}


def test_out_of_scope_question_abstains(http):
    record = http.post("/v1/ask", json={"question": "明天天气怎么样"}).json()
    assert record["abstained"] and record["citations"] == []
    figure = http.post("/v1/ask", json={"question": FIGURE}).json()
    assert figure["abstained"] and figure["citations"] == [] and figure["related"]
    assert http.post("/v1/ask", json={"question": SLAUGHTER}).json()["related"] == []


def test_one_item_in_full(http, items):
    expected = next(i for i in items if i.id == ITEM)
    record = http.get(f"/v1/items/{ITEM}").json()
    assert record["id"] == ITEM and record["citation"] == "〔二工镇·配合履职·第22项〕"
    assert record["title"] == expected.title and record["township_duties"] == list(expected.township_duties)
    assert record["departments"] == list(expected.departments)


def test_item_list_is_complete_and_paginated(http, items):
    wanted = [i.id for i in items if i.town == "二工镇" and i.list.value == "coordinated"]
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = http.get(
            "/v1/items", params={"town": "二工镇", "list": "coordinated", "limit": 7, "offset": offset}
        ).json()
        assert page["total"] == len(wanted) and len(page["items"]) <= 7
        seen += [i["id"] for i in page["items"]]
        offset, pages = page["next_offset"], pages + 1
    assert seen == wanted and pages == -(-len(wanted) // 7)
    everything = http.get("/v1/items", params={"limit": 500}).json()
    assert everything["total"] == len(items) and everything["next_offset"] is None


def test_item_list_filters_by_category_and_department_spelling(http, items):
    sample = next(i for i in items if i.list.value == "coordinated" and i.departments)
    by_category = http.get("/v1/items", params={"category": sample.category, "limit": 500}).json()
    assert by_category["total"] == sum(i.category == sample.category for i in items)
    assert {i["category"] for i in by_category["items"]} == {sample.category}
    full = http.get("/v1/items", params={"department": "吉木萨尔县水利局", "limit": 500}).json()
    short = http.get("/v1/items", params={"department": "水利局", "limit": 500}).json()
    assert full["total"] > 0 and [i["id"] for i in full["items"]] == [i["id"] for i in short["items"]]
    assert all(
        any("水利" in d for d in i["departments"] + [r["department"] for r in i["receivers"]]) for i in full["items"]
    )


# -- operations ----------------------------------------------------------------------------------


def test_health_and_readiness(http, assistant):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready" and ready["items"] == len(assistant.kb.items)
    assert ready["generation"] == assistant.kb.folder.name and ready["generation"].startswith("gen-")


def metric(text: str, name: str, **labels) -> float:
    """One sample of the Prometheus text format (labels in any order); 0 if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_metrics_count_requests_latency_and_answers(http):
    route = {"method": "GET", "route": "/v1/items/{item_id}", "status": "404"}
    before = http.get("/metrics").text
    http.get("/v1/items/没有这个镇:basic:1")
    http.post("/v1/ask", json={"question": "明天天气怎么样"})
    after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    assert (
        metric(after.text, "duty_http_requests_total", **route)
        == metric(before, "duty_http_requests_total", **route) + 1
    )
    abstained = {"generator": "extractive", "abstained": "true"}
    assert (
        metric(after.text, "duty_answers_total", **abstained) == metric(before, "duty_answers_total", **abstained) + 1
    )
    assert metric(after.text, "duty_http_request_seconds_count", route="/v1/ask") >= 1
    assert metric(after.text, "duty_http_request_seconds_bucket", route="/v1/ask", le="+Inf") >= 1
    assert "duty_llm_fallbacks_total" in after.text


def test_docs_work_offline(http):
    page = http.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert http.get(asset).status_code == 200, asset
    schema = http.get("/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"] and "/v1/ask" in schema["paths"]


def test_web_app_is_served_from_the_same_process(http):
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    config = http.get("/config").json()
    assert "履职助手" in json.dumps(config, ensure_ascii=False)


def test_web_app_answers_through_its_own_api_in_the_same_process(open_server):
    from gradio_client import Client

    chat, *_ = Client(open_server.url + "/", verbose=False).predict(SLAUGHTER, [], [], api_name="/chat")
    reply = json.dumps(chat[-1]["content"], ensure_ascii=False)
    assert ITEM in reply  # the citation chip's value


# -- bad input: 4xx JSON naming the field, never a 500 -------------------------------------------


def test_malformed_json(http):
    response = http.post("/v1/ask", content=b'{"question": "x"', headers={"content-type": "application/json"})
    error_of(response, 400, "body")
    response = http.post("/v1/chat/completions", content=b"[1, 2", headers={"content-type": "application/json"})
    error_of(response, 400, "body")


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/ask", {"question": 123}, "question"),
        ("/v1/ask", {"question": ["列出"]}, "question"),
        ("/v1/ask", {}, "question"),
        ("/v1/ask", {"question": "x", "towns": "二工镇"}, "towns"),
        ("/v1/ask", {"question": "x", "lists": ["基本"]}, "lists[0]"),
        ("/v1/ask", {"question": "x", "history": [5]}, "history[0]"),
        ("/v1/ask", {"question": "x", "use_llm": "yes"}, "use_llm"),
        ("/v1/ask", {"question": "x", "colour": "red"}, "colour"),
        ("/v1/ask", ["question"], "body"),
        ("/v1/chat/completions", {"messages": "你好"}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": 3}, "model"),
    ],
)
def test_wrong_types_name_the_field(http, path, body, param):
    error_of(http.post(path, json=body), 400, param)


def test_empty_and_over_long_questions(http, built_settings):
    for question in ("", "   "):
        assert "不能为空" in error_of(http.post("/v1/ask", json={"question": question}), 400, "question")["message"]
    too_long = "镇" * (built_settings.max_question_chars + 1)
    assert "过长" in error_of(http.post("/v1/ask", json={"question": too_long}), 400, "question")["message"]
    chat = {"messages": [{"role": "user", "content": too_long}]}
    error_of(http.post("/v1/chat/completions", json=chat), 400, "messages[0].content")
    ends_with_reply = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
    error_of(http.post("/v1/chat/completions", json=ends_with_reply), 400, "messages")


def test_unknown_towns_items_and_list_names(http):
    error_of(http.post("/v1/ask", json={"question": "私自宰羊", "towns": ["三工镇"]}), 400, "towns")
    for missing in ("二工镇:coordinated:999", "三工镇:basic:1", "not-an-id"):
        assert missing in error_of(http.get(f"/v1/items/{missing}"), 404, "item_id")["message"]
    error_of(http.get("/v1/items", params={"town": "三工镇"}), 400, "town")
    error_of(http.get("/v1/items", params={"list": "基本"}), 400, "list")
    error_of(http.get("/v1/items", params={"limit": 0}), 400, "limit")
    error_of(http.get("/v1/items", params={"offset": "abc"}), 400, "offset")
    error_of(http.get("/v1/nothing-here"), 404)
    error_of(http.get("/v1/ask"), 405)


def test_body_over_the_size_limit(http):
    big = {"question": "私自宰羊" * 2000}
    error_of(http.post("/v1/ask", json=big), 413, "body")

    def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 1000
        yield b'{"question": "x"}'

    error_of(http.post("/v1/ask", content=chunked(), headers={"content-type": "application/json"}), 413, "body")


def test_wrong_content_type(http):
    response = http.post(
        "/v1/ask", content=json.dumps({"question": SLAUGHTER}).encode(), headers={"content-type": "text/plain"}
    )
    error_of(response, 415, "Content-Type")
    error_of(http.post("/v1/ask", data={"question": SLAUGHTER}), 415, "Content-Type")


# -- access: keys, rate limit, public bind -------------------------------------------------------


@pytest.mark.slow
def test_keys_are_stored_only_as_hashes(keys):
    path, made = keys
    stored = path.read_text(encoding="utf-8")
    assert all(key.startswith("duty-") and len(key) > 40 and key not in stored for key in made.values())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    store = AccessStore(path)
    assert store.check_key(made["hotline"]) == "hotline" and store.check_key(made["hotline"] + "x") is None


def test_wrong_or_missing_key_is_401(keyed_server, keys):
    _, made = keys
    for headers in ({}, {"Authorization": "Bearer duty-wrong"}, {"Authorization": "Basic " + made["值班室"]}):
        response = httpx.post(keyed_server.url + "/v1/ask", json={"question": SLAUGHTER}, headers=headers)
        error_of(response, 401, "Authorization")
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="duty-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key=made["值班室"], max_retries=0)
    assert right.chat.completions.create(
        model="duty-assistant", messages=[{"role": "user", "content": SLAUGHTER}]
    ).model_extra["citations"]
    assert httpx.get(keyed_server.url + "/healthz").status_code == 200  # probes need no key


def test_burst_over_the_limit_is_429_with_retry_after_per_key(keyed_server, keys):
    _, made = keys
    burst = [
        httpx.get(keyed_server.url + "/v1/models", headers={"Authorization": f"Bearer {made['hotline']}"})
        for _ in range(8)
    ]
    assert [r.status_code for r in burst] == [200] * 5 + [429] * 3
    error = error_of(burst[-1], 429)
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(burst[-1].headers["retry-after"]) <= 60
    other = httpx.get(keyed_server.url + "/v1/models", headers={"Authorization": f"Bearer {made['值班室']}"})
    assert other.status_code == 200  # the limit is per key


def test_web_login_uses_the_same_store(keyed_server, keys):
    _, made = keys
    anonymous = httpx.get(keyed_server.url + "/config")
    assert anonymous.status_code == 401 or anonymous.json().get("auth_required")
    with httpx.Client(base_url=keyed_server.url) as browser:
        refused = browser.post("/login", data={"username": "值班室", "password": "duty-wrong"})
        assert refused.status_code == 400
        accepted = browser.post("/login", data={"username": "值班室", "password": made["值班室"]})
        assert accepted.status_code == 200 and accepted.json()["success"]
        assert "auth_required" not in browser.get("/config").json()


@pytest.mark.slow
def test_serve_refuses_a_public_bind_without_keys(tmp_path):
    result = run_cli(["serve", "--host", "0.0.0.0", "--port", str(free_port())], tmp_path)
    assert result.returncode == 2
    assert "拒绝" in result.stderr and "keys add" in result.stderr
    assert not (tmp_path / "index").exists()  # refused before loading anything


def test_serve_runs_and_shuts_down_gracefully(built_settings):
    port = free_port()
    environment = {
        **os.environ,
        "DUTY_HOME": str(built_settings.home),
        "HF_HUB_OFFLINE": "1",
        "DUTY_API_KEYS_FILE": str(built_settings.home / "no-keys.json"),
    }
    process = subprocess.Popen(CLI + ["serve", "--port", str(port)], env=environment, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.5)
        assert httpx.post(f"http://127.0.0.1:{port}/v1/ask", json={"question": SLAUGHTER}).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    log = process.stderr.read()
    assert code in (0, -signal.SIGTERM), log  # uvicorn re-raises the signal after its graceful shutdown
    assert "Traceback" not in log
    access = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    ask = next(line for line in access if line["path"] == "/v1/ask")
    assert ask["status"] == 200 and "question" not in ask and SLAUGHTER not in log


# -- with a language model (only its answers are fake) -------------------------------------------


def test_llm_answers_stream_with_validated_citations_and_fallbacks_are_counted(assistant, built_settings, tmp_path):
    from openai_stub import OpenAIStub, Reply, markers

    from assistant.service import Assistant

    with OpenAIStub() as stub:
        settings = built_settings.model_copy(
            update={
                "llm_base_url": stub.url,
                "llm_model": "stub-model",
                "llm_timeout": 1.5,
                "llm_max_retries": 0,
                "api_keys_file": tmp_path / "access.json",
            }
        )
        with Server(create_app(Assistant(assistant.kb, settings), settings, web=False)) as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            stub.script(
                lambda request: Reply(f"乡镇要及时劝说制止{markers(request)[0]}，另见〔二工镇·配合履职·第999项〕。")
            )
            chunks = list(
                client.chat.completions.create(
                    model="duty-assistant", messages=[{"role": "user", "content": SLAUGHTER}], stream=True
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            final = chunks[-1].model_extra
            assert final["generator"] == "llm" and "劝说制止〔" in text and "第999项" not in text
            assert final["invalid_citations"] == ["二工镇:coordinated:999"]
            assert [f"〔{c['town']}·" in text for c in final["citations"]] == [True] * len(final["citations"])
            stub.script(Reply(raw="this is not json"))
            fallback = client.chat.completions.create(
                model="duty-assistant", messages=[{"role": "user", "content": SLAUGHTER}]
            )
            assert fallback.model_extra["generator"] == "extractive" and fallback.model_extra["citations"]
            off = client.chat.completions.create(
                model="duty-assistant", extra_body={"use_llm": False}, messages=[{"role": "user", "content": SLAUGHTER}]
            )
            assert off.model_extra["generator"] == "extractive"
            assert metric(httpx.get(server.url + "/metrics").text, "duty_llm_fallbacks_total") == 1


def test_access_store_passwords_env_keys_and_revocation(tmp_path):
    path = tmp_path / "access.json"
    store = AccessStore(path, env_keys="duty-from-env, ")
    assert store.has_keys and store.check_key("duty-from-env") == "env-1" and not path.exists()  # never written
    store.set_password("值班室", "一二三四五六七八")
    assert store.check_login("值班室", "一二三四五六七八") and not store.check_login("值班室", "wrong-pass")
    assert "一二三四五六七八" not in path.read_text(encoding="utf-8")
    key = AccessStore(path).add_key("hotline")  # another process adds a key: the first store sees it
    assert store.check_key(key) == "hotline" and store.check_login("hotline", key)
    with pytest.raises(ValueError):
        AccessStore(path).add_key("hotline")
    with pytest.raises(ValueError):
        AccessStore(path).add_key("bad name")
    assert AccessStore(path).remove("hotline") == 1 and store.check_key(key) is None
