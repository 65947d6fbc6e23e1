"""The 数据管理 tab in headless Chromium: log in, upload a changed list, preview exactly its three
changes, publish, the chat answers from the new text, roll back, the chat answers from the
old text; a session that did not log in neither sees the tab nor can call its endpoints."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from documents import NEW_DUTY, NEW_ITEM, changed_ergong
from test_ui import CHROMIUM, CHROMIUM_ARGS, NO_PROXY, _ask, _free_port

from assistant.index import open_index
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings
from ui.app import build_app, launch

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "测试-s3cret-口令"
QUESTION = "二工镇配合履职事项第22项是什么？"
OLD_DUTY = "对有“私屠滥宰”行为的及时劝说制止"


@pytest.fixture(scope="module")
def data_settings(built_settings, tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("data-home")
    shutil.copytree(built_settings.index_dir, home / "index")
    return Settings(home=home, corpus=[CORPUS_DIR], admin_password=PASSWORD)


@pytest.fixture(scope="module")
def data_server(data_settings, assistant):
    kb = open_index(data_settings, embedder=assistant.kb.embedder)
    demo = build_app(Assistant(kb, data_settings), data_settings)
    url = launch(demo, "127.0.0.1", _free_port(), block=False)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser(data_server):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `make install-test` (Debian packages chromium, chromium-driver)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#question textarea")
    return page


def test_admin_previews_publishes_and_rolls_back(browser, data_server, data_settings, tmp_path):
    page = _page(browser, data_server)
    assert page.get_by_role("tab", name="数据管理").count() == 0
    assert PASSWORD not in page.content()
    old_generation = open_index(data_settings).generation

    page.get_by_role("tab", name="关于数据").click()
    page.locator("#admin-login").get_by_text("管理员登录").click()
    page.locator("#admin-secret input").fill("wrong")
    page.locator("#admin-submit").click()
    page.locator("#admin-status", has_text="用户名或密码不对").wait_for()
    assert page.get_by_role("tab", name="数据管理").count() == 0
    page.locator("#admin-secret input").fill(PASSWORD)
    page.locator("#admin-submit").click()
    page.locator("#admin-status", has_text="已登录：admin").wait_for()
    page.get_by_role("tab", name="数据管理").click()
    page.locator("#data-versions tr.live").wait_for()

    page.locator("#data-upload input[type=file]").set_input_files(str(changed_ergong(tmp_path / "upload")))
    page.locator("#data-upload", has_text="二工镇").wait_for()
    page.locator("#data-preview-button").click()
    town = page.locator("#data-preview .diff-town[data-town='二工镇']")
    town.wait_for()
    assert "新增 1 项，删除 0 项，修改 1 项，移到其他清单 1 项，仅序号变化 0 项，未变 239 项" in town.inner_text()
    rows = town.locator("tbody tr")
    assert rows.count() == 3
    assert [rows.nth(n).get_attribute("class") for n in range(3)] == ["change-added", "change-changed", "change-moved"]
    assert NEW_ITEM in rows.nth(0).inner_text()
    assert "乡镇配合职责" in rows.nth(1).inner_text() and "配合履职第22项" in rows.nth(1).inner_text()
    assert "配合履职第102项" in rows.nth(2).inner_text() and "收回事项第31项" in rows.nth(2).inner_text()
    assert (
        "吉木萨尔县二工镇：基本履职 110 项，配合履职 101 项，收回事项 31 项"
        in page.locator("#data-preview").inner_text()
    )
    assert open_index(data_settings).generation == old_generation  # a preview publishes nothing
    rows.nth(1).locator("details summary").click()
    page.wait_for_timeout(300)
    (ROOT / "artifacts").mkdir(exist_ok=True)
    # the README's docs/screenshot-data.png is a copy of this one
    page.locator("#data-preview").screenshot(path=str(ROOT / "artifacts" / "screenshot-data.png"))

    page.locator("#data-publish").click()
    page.locator("#data-status", has_text="已发布索引版本").wait_for()
    new_generation = open_index(data_settings).generation
    assert new_generation != old_generation
    page.locator(f"#data-versions tr.live[data-generation='{new_generation}']").wait_for()
    page.get_by_role("tab", name="问答").click()
    assert NEW_DUTY in _ask(page, QUESTION).inner_text()

    page.get_by_role("tab", name="数据管理").click()
    page.locator("#data-rollback").click()
    page.locator("#data-status", has_text="已回滚").wait_for()
    assert open_index(data_settings).generation == old_generation
    audit = page.locator("#data-audit tbody tr")
    assert audit.count() == 2 and "回滚" in audit.nth(0).inner_text() and "发布" in audit.nth(1).inner_text()
    page.get_by_role("tab", name="问答").click()
    answer = _ask(page, QUESTION).inner_text()
    assert NEW_DUTY not in answer and OLD_DUTY in answer
    page.close()


def test_a_session_without_login_neither_sees_nor_can_call_the_tab(browser, data_server, data_settings):
    page = _page(browser, data_server)
    assert page.get_by_role("tab", name="数据管理").count() == 0
    page.close()
    before = open_index(data_settings).generation
    base = data_server.rstrip("/")
    config = json.loads(NO_PROXY.open(f"{base}/config", timeout=10).read())
    by_elem = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c.get("props")}
    for button, data in (("data-rollback", [None, None]), ("data-publish", [None, None, False])):
        dependency = next(d for d in config["dependencies"] if [by_elem[button], "click"] in d["targets"])
        output = _call(base, dependency["id"], by_elem[button], data)
        assert "需要管理员登录" in json.dumps(output, ensure_ascii=False), output
    assert open_index(data_settings).generation == before


def _call(url: str, fn_index: int, trigger: int, data: list) -> list:
    """Call an event handler the way the page does, from a fresh session (never logged in)."""
    import urllib.request

    session = uuid.uuid4().hex
    body = json.dumps(
        {"data": data, "fn_index": fn_index, "trigger_id": trigger, "session_hash": session, "event_data": None}
    ).encode()
    request = urllib.request.Request(f"{url}/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    NO_PROXY.open(request, timeout=10).read()
    with NO_PROXY.open(f"{url}/gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
        for raw in stream:
            line = raw.decode("utf-8").strip()
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message["output"].get("data", [message["output"]])
    raise AssertionError("no answer from the queue")
