"""The web app: rendering and handlers on the real index, then the real app in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from openai_stub import OpenAIStub, Reply, markers

from assistant.answering.answer import Answer
from assistant.feedback import FeedbackLog
from assistant.items import ListKind
from assistant.service import Assistant
from assistant.settings import Settings
from ui import render
from ui.app import App, build_app, launch, open_assistant
from ui.browse import ALL, Browser, Filters, id_of_row, row
from ui.chat import Conversation, failure_message

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLAUGHTER = "二工镇有人在家里私自宰羊卖肉，镇里该干点啥？"
OUT_OF_SCOPE = "我的退休金是怎么算出来的？"
CHIP_VALUE = re.compile(r'class="chip chip-cite" value="([^"]+)"')


# -- rendering -----------------------------------------------------------------------------------


def test_dev_questions_render_exactly_their_citations_as_chips(assistant):
    lines = (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    dev = [q for q in map(json.loads, lines) if q["split"] == "dev"]
    sample = [q for kind in sorted({q["kind"] for q in dev}) for q in [q for q in dev if q["kind"] == kind][:6]]
    for question in sample:
        answer = assistant.ask(question["question"])
        html = render.answer_html(answer)
        assert set(CHIP_VALUE.findall(html)) == {item.id for item in answer.citations}, question["id"]
        assert "\n" not in html  # one HTML block for the chat's Markdown renderer
        assert "用时：" in html and "检索详情" in html
        if answer.abstained:
            assert render.ABSTAIN_BANNER in html


def test_markers_of_items_not_cited_are_flagged_and_text_is_escaped(items):
    cited = items[0]
    other = items[1]
    text = f"{cited.citation}是依据，{other.citation}不是。<script>alert(1)</script>"
    html = render.text_with_chips(text, {cited.id: cited})
    assert CHIP_VALUE.findall(html) == [cited.id]
    assert f'<span class="bad-cite" title="未经核实的引用">{other.citation}</span>' in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_item_panel_shows_every_column_with_numbered_steps(items):
    coordinated = next(i for i in items if i.list is ListKind.COORDINATED and len(i.township_duties) > 1)
    html = render.item_html(coordinated)
    for value in (
        coordinated.town,
        coordinated.list.label,
        f"第{coordinated.number}项",
        coordinated.category,
        *coordinated.departments,
    ):
        assert value in html
    township = html.split("乡镇配合职责")[1]
    assert township.count("<li>") >= len(coordinated.township_duties)
    withdrawn = next(i for i in items if i.receivers)
    assert "承接部门及工作方式" in render.item_html(withdrawn)
    assert withdrawn.receivers[0].department in render.item_html(withdrawn)


def test_an_enumeration_is_a_complete_table(assistant):
    answer = assistant.ask("二工镇有哪些收回事项？")
    html = render.answer_html(answer)
    table = html.split('<table class="items">')[1]
    assert (
        table.count("<tr>") - 1
        == len(answer.citations)
        == len([i for i in assistant.kb.items if i.town == "二工镇" and i.list is ListKind.WITHDRAWN])
    )
    assert "- 〔" not in html  # the bullet list of the text is replaced by the table


def test_abstention_shows_related_items_apart_from_citations(assistant):
    answer = assistant.ask(OUT_OF_SCOPE)
    assert answer.abstained and answer.related
    html = render.answer_html(answer)
    assert "chip-cite" not in html and 'class="sources"' not in html
    related = html.split('<div class="related">')[1]
    assert related.count("chip-related") == len(answer.related)


def test_timing_line_reports_generation_for_the_llm_path():
    line = render.timing_html({"retrieval": 0.1, "first_token": 0.5, "total": 2.1})
    assert "检索 0.10 秒" in line and "生成 2.00 秒" in line and "共计 2.10 秒" in line


def test_about_panel_lists_documents_counts_and_build_time(assistant, built_settings):
    html = App(assistant, built_settings).about()
    manifest = assistant.kb.manifest
    for document in manifest["documents"]:
        assert document["town"] in html and f"<td>{sum(document['counts'].values())}</td>" in html
    assert render.local_time(manifest["built"]) in html and f"{len(assistant.kb.items)} 项" in html


# -- browsing ------------------------------------------------------------------------------------


def test_browser_filters_rows_and_finds_the_same_duty_elsewhere(assistant):
    browser = Browser(assistant.kb.items, assistant.retriever.catalog)
    assert len(browser.filter(Filters())) == len(assistant.kb.items)
    found = browser.filter(Filters(text="私屠滥宰", town="半截沟镇", kind=ListKind.COORDINATED.short))
    assert found and all(i.town == "半截沟镇" and "私屠滥宰" in i.title for i in found)
    department = found[0].departments[0]
    assert all(department in i.involved_departments for i in browser.filter(Filters(department=department)))
    assert id_of_row(row(found[0])) == found[0].id
    item = assistant.kb.by_id["二工镇:coordinated:22"]
    twin = browser.counterpart(item, "半截沟镇")
    assert twin is not None and twin.town == "半截沟镇" and twin.title == item.title
    assert browser.filter(Filters(category=ALL, text="没有这种事项的词xyz")) == []


# -- chat without a browser ------------------------------------------------------------------------


def test_a_follow_up_is_answered_in_context(assistant):
    conversation = Conversation(assistant)
    first = list(conversation.reply("二工镇私屠滥宰归谁管？", (), (), []))[-1]
    second = list(conversation.reply("那半截沟镇呢？", (), (), [first]))[-1]
    assert isinstance(second.answer, Answer)
    assert [i.town for i in second.answer.citations] == ["半截沟镇"]
    assert "私屠滥宰" in second.answer.citations[0].title


def test_an_llm_answer_streams_into_the_chat(assistant):
    with OpenAIStub() as stub:
        stub.script(lambda request: Reply(f"乡镇要及时劝说制止，并配合上级核查{markers(request)[0]}。"))
        shown = [
            (turn, turn.html) for turn in Conversation(_with_llm(assistant, stub.url)).reply(SLAUGHTER, (), (), [])
        ]
    partial = [html for _, html in shown if "streaming" in html]
    assert "正在检索" in partial[0] and len(partial) > 3  # then the reply grows piece by piece
    assert all(len(a) < len(b) for a, b in zip(partial[1:], partial[2:]))
    final = shown[-1][0]
    assert final.answer.generator == "llm" and not final.failed
    assert set(CHIP_VALUE.findall(final.html)) == {i.id for i in final.answer.citations} != set()
    assert "生成" in final.html


def test_an_unreachable_llm_is_a_note_not_an_error(assistant):
    turns = list(Conversation(_with_llm(assistant, f"http://127.0.0.1:{_free_port()}/v1")).reply(SLAUGHTER, (), (), []))
    final = turns[-1]
    assert not final.failed and final.answer.generator == "extractive"
    assert 'class="note"' in final.html and "语言模型暂不可用" in final.html
    assert CHIP_VALUE.findall(final.html)


def _with_llm(assistant: Assistant, url: str) -> Assistant:
    settings = assistant.settings.model_copy(
        update={"llm_base_url": url, "llm_model": "stub-model", "llm_timeout": 2.0, "llm_max_retries": 0}
    )
    return Assistant(assistant.kb, settings)


def test_unexpected_failures_read_as_chinese_messages():
    assert failure_message(ConnectionError("refused"), llm_configured=True).startswith("无法连接大模型服务")
    message = failure_message(ValueError("坏数据"), llm_configured=False)
    assert message.startswith("回答时出错") and "坏数据" in message


def test_a_broken_index_is_explained_in_the_page(tmp_path):
    settings = Settings(home=tmp_path)
    settings.index_dir.mkdir(parents=True)
    (settings.index_dir / "CURRENT").write_text("gen-missing", encoding="utf-8")
    assistant, unavailable = open_assistant(settings, say=lambda message: None)
    assert assistant is None and unavailable.startswith("无法打开索引")
    turn = list(Conversation(None, unavailable).reply("任何问题", (), (), []))[-1]
    assert turn.failed and "无法打开索引" in turn.html and "Traceback" not in turn.html
    build_app(None, settings, unavailable)  # the page still builds, showing the reason


def test_ui_command_serves_the_page(built_settings, tmp_path):
    port = _free_port()
    env = {**os.environ, "DUTY_HOME": str(built_settings.home), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "ui.cli", "ui", "--port", str(port)]
    log = tmp_path / "stderr.txt"
    with open(log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, env=env, stderr=stderr, stdout=subprocess.DEVNULL)
    try:
        _wait_for(lambda: f"http://127.0.0.1:{port}" in log.read_text(encoding="utf-8"), process, log, seconds=90)
        with NO_PROXY.open(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert "履职助手" in response.read().decode("utf-8")
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- the real app in headless Chromium -----------------------------------------------------------


@pytest.fixture(scope="module")
def app_settings(built_settings, tmp_path_factory) -> Settings:
    """The session index's settings with a home of its own for feedback."""
    return built_settings.model_copy(update={"home": tmp_path_factory.mktemp("ui-home")})


@pytest.fixture(scope="module")
def server(assistant, app_settings):
    demo = build_app(assistant, app_settings)
    url = launch(demo, "127.0.0.1", _free_port(), block=False)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `make install-test` (Debian packages chromium, chromium-driver)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server)
        page.wait_for_selector("#question textarea")
        yield page, requested
        browser.close()


def test_chat_answer_cites_and_a_chip_opens_the_full_item(browser_page, server, assistant):
    page, requested = browser_page
    answer = _ask(page, SLAUGHTER)
    expected = assistant.ask(SLAUGHTER).citations[0]
    chip = answer.locator(f"button.chip-cite[value='{expected.id}']").first
    assert chip.inner_text() == render.chip_label(expected)
    assert "用时：" in answer.inner_text()
    chip.click()
    panel = page.locator(f"#item-panel .item[data-id='{expected.id}']")
    panel.wait_for()
    text = panel.inner_text()
    for value in (expected.title, expected.category, *expected.township_duties, *expected.department_duties):
        assert value in text
    assert panel.locator("ol li").count() == len(expected.township_duties) + len(expected.department_duties)
    page.wait_for_timeout(300)  # let the panel's update transition finish before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-chat-citation.png"))
    answer.locator("details.retrieval summary").click()
    assert answer.locator("table.hits tbody tr").count() > 0
    hosts = {urlparse(url).netloc for url in requested if not url.startswith(("data:", "blob:"))}
    assert hosts == {urlparse(server).netloc}, "the page must not load anything from other hosts"


def test_filters_tables_and_abstention_in_the_chat(browser_page, assistant):
    page, _ = browser_page
    page.locator("#town-filter label", has_text="半截沟镇").click()
    answer = _ask(page, "有人在家里私自宰羊卖肉，镇里该干点啥？")
    cited = answer.locator("button.chip-cite").evaluate_all("chips => chips.map(c => c.value)")
    assert cited and all(value.startswith("半截沟镇:") for value in cited)
    page.locator("#town-filter label", has_text="半截沟镇").click()

    question = "二工镇有哪些收回事项？"
    answer = _ask(page, question)
    assert answer.locator("table.items tbody tr").count() == len(assistant.ask(question).citations)

    answer = _ask(page, OUT_OF_SCOPE)
    assert render.ABSTAIN_BANNER in answer.inner_text()
    assert answer.locator("button.chip-cite").count() == 0
    assert answer.locator(".related button.chip-related").count() == len(assistant.ask(OUT_OF_SCOPE).related)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-chat-abstention.png"))


def test_feedback_is_appended_to_the_jsonl_file(browser_page, app_settings):
    page, _ = browser_page
    answer = _ask(page, "出具婚姻状况证明现在还归乡镇管吗？")
    question_count = page.locator("#chat .answer:not(.streaming)").count()
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.locator("#feedback-status", has_text="已记录").wait_for()
    page.locator("#feedback-comment textarea").fill("应该同时说明半截沟镇的情况")
    page.locator("#feedback-expected input").fill("半截沟镇·收回·2")
    page.get_by_role("option", name=re.compile("半截沟镇·收回·2 ")).click()
    page.locator("#feedback-submit").click()
    page.locator("#feedback-status", has_text=f"第 {question_count} 条").wait_for()
    records, errors = FeedbackLog(app_settings.feedback_file).read()
    assert errors == []
    mine = [r for r in records if r.question == "出具婚姻状况证明现在还归乡镇管吗？"]
    assert [r.rating for r in mine] == ["down", "down"] and mine[0].id == mine[1].id
    assert mine[1].comment == "应该同时说明半截沟镇的情况"
    assert mine[1].expected == ["半截沟镇:withdrawn:2"]
    assert set(mine[1].citations) == set(answer.locator("button.chip-cite").evaluate_all("cs => cs.map(c => c.value)"))
    assert len(mine[1].history) == question_count - 1


def test_browse_filter_select_and_side_by_side(browser_page, assistant):
    page, _ = browser_page
    page.get_by_role("tab", name="浏览清单").click()
    total = len(assistant.kb.items)
    page.locator("#browse-count", has_text=f"共 {total} 项").wait_for()
    page.locator("#browse-search textarea, #browse-search input").first.fill("私屠滥宰")
    expected = [i for i in assistant.kb.items if "私屠滥宰" in i.title or "私屠滥宰" in " ".join(i.township_duties)]
    page.locator("#browse-count", has_text=f"共 {len(expected)} 项").wait_for()
    page.locator("#browse-town input").click()
    page.get_by_role("option", name="二工镇").click()
    shown = len([i for i in expected if i.town == "二工镇"])
    page.locator("#browse-count", has_text=f"共 {shown} 项").wait_for()
    page.locator("#browse-table [data-testid='cell-0-4']").click()
    detail = page.locator("#browse-detail .side-by-side")
    detail.wait_for()
    items = detail.locator(".item")
    assert items.count() == 2
    left, right = (items.nth(n).get_attribute("data-id") for n in range(2))
    assert left.startswith("二工镇:") and right.startswith("半截沟镇:")
    assert assistant.kb.by_id[left].title == assistant.kb.by_id[right].title


# -- helpers -------------------------------------------------------------------------------------


def _ask(page, question: str):
    """Send a question and wait for its finished answer."""
    finished = "#chat .answer:not(.streaming)"
    before = page.locator(finished).count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    page.wait_for_function(f"document.querySelectorAll({finished!r}).length > {before}")
    return page.locator(finished).last


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_for(condition, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"`duty-assistant ui` exited: {log.read_text(encoding='utf-8')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"`duty-assistant ui` did not start within {seconds} s")
        time.sleep(0.25)


# -- hostile input (issue 14, items 5 and 12) -------------------------------------------------------

HOSTILE_QUESTION = (
    "![x](http://127.0.0.1:9/x.png) 私屠滥宰 [点我](http://127.0.0.1:9/a) $$\\href{http://127.0.0.1:9/}{x}$$ "
    "<img src=http://127.0.0.1:9/y.png> http://127.0.0.1:9/z"
)


def test_user_text_is_shown_as_text_and_loads_nothing(browser_page):
    """A Markdown image in a question must not be fetched, in the chat or the feedback label."""
    page, requested = browser_page
    page.get_by_role("tab", name="问答").click()
    _ask(page, HOSTILE_QUESTION)
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.locator("#feedback-status", has_text="已记录").wait_for()
    page.wait_for_timeout(500)  # give any image or link prefetch time to start
    assert [url for url in requested if "127.0.0.1:9/" in url] == []
    assert page.locator("#chat .plain").last.inner_text() == HOSTILE_QUESTION
    assert HOSTILE_QUESTION in page.locator("#feedback-target").inner_text()
    for place in ("#chat", "#feedback-target"):
        assert page.locator(f"{place} img[src*='127.0.0.1:9'], {place} a[href*='127.0.0.1:9']").count() == 0


def test_plain_html_is_one_inert_block():
    html = render.plain_html("![x](http://h/x.png)\n\n<b>[/bold]</b> $$x$$")
    assert "\n" not in html and "<b>" not in html and "](" not in html and "$$" not in html
    assert html.startswith('<div class="plain">') and html.count("<br>") == 2


def test_uploads_are_limited(server):
    import httpx

    limit = int(Settings.model_fields["ui_max_upload_mb"].default * 2**20)
    with httpx.Client(trust_env=False, timeout=30) as client:
        big = client.post(f"{server.rstrip('/')}/gradio_api/upload", files={"files": ("a.bin", b"0" * (limit + 2**20))})
        small = client.post(f"{server.rstrip('/')}/gradio_api/upload", files={"files": ("a.bin", b"0" * 1000)})
    assert big.status_code == 413, big.text[:200]
    assert small.status_code == 200


def test_a_long_feedback_comment_is_refused_with_a_reason(assistant, tmp_path):
    settings = assistant.settings.model_copy(update={"home": tmp_path, "feedback_max_chars": 50})
    app = App(assistant, settings)
    turns = list(app.conversation.reply("出具婚姻状况证明还归镇里吗？", (), (), []))[-1:]
    status, *_ = app.submit_feedback(0, "down", "很" * 51, [], False, turns)
    assert "意见过长（51字）" in status and "50字以内" in status
    assert FeedbackLog(settings.feedback_file).read() == ([], [])
    status, *_ = app.submit_feedback(0, "down", "很" * 50, [], False, turns)
    assert status.startswith("已记录") and len(FeedbackLog(settings.feedback_file).read()[0]) == 1
