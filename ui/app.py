"""The web app: chat with clickable citations, an item browser, feedback, data facts, and
(for administrators) data management.

The index is loaded once; each request checks the live generation's name (one small read)
and reopens the index when a publish or rollback moved it, so no restart is needed.
Nothing on the page comes from the internet: system fonts, no analytics, no CDN.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from assistant.feedback import Feedback, FeedbackLog
from assistant.index import IndexMissing, IngestLocked, ingest, live_generation, open_index
from assistant.items import DutyItem, ListKind
from assistant.service import Assistant
from assistant.settings import Settings
from ui import render
from ui.browse import ALL, COLUMNS, Browser, Filters, id_of_row
from ui.chat import ChatTurn, Conversation, feedback_for, messages, turn_of_message
from ui.data import DataAdmin

log = logging.getLogger(__name__)

SYSTEM_FONTS = [
    "PingFang SC",
    "Microsoft YaHei",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
]
MONO_FONTS = ["Menlo", "Consolas", "DejaVu Sans Mono", "monospace"]
RATINGS = [("有用", "up"), ("有问题", "down")]
EXAMPLES = [
    "{a}有人在家里私自宰羊卖肉，镇里该干点啥？",
    "出具婚姻状况证明现在还归乡镇管吗？",
    "{b}配合履职事项第16项是什么？",
    "{a}有哪些收回事项？",
    "{b}收回了几项？",
    "{b}有哪些收回事项是{a}没有的？",
]
PANEL_HINT = "点击回答中的出处，在这里查看事项全文。"
WELCOME = "请输入问题，例如“某镇村里有人私自宰羊，镇里该做什么？”。回答只依据已加载的履职事项清单，并标明出处；点击出处可查看事项全文。"

# Clicking any citation chip asks the server for the item (see ui.render.chip).
CHIP_JS = """
if (window.dutyChipHandler) document.removeEventListener('click', window.dutyChipHandler);
window.dutyChipHandler = (event) => {
  const chip = event.target.closest('button.chip');
  if (!chip) return;
  event.preventDefault();
  trigger('click', {item: chip.value});
};
document.addEventListener('click', window.dutyChipHandler);
"""

CSS = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")


class App:
    """Handlers bound to one loaded assistant (or to the reason there is none)."""

    def __init__(self, assistant: Assistant | None, settings: Settings, unavailable: str = ""):
        self.settings = settings
        self.unavailable = unavailable
        self.conversation = Conversation(assistant, unavailable)
        self.feedback = FeedbackLog(settings.feedback_file)
        self.data = DataAdmin(settings, on_change=self.follow_live)
        self._reloading = threading.Lock()
        self._use(assistant)

    def _use(self, assistant: Assistant | None) -> None:
        self.assistant = assistant
        self.conversation.assistant = assistant
        self.by_id: dict[str, DutyItem] = assistant.kb.by_id if assistant else {}
        self.browser = Browser(
            assistant.kb.items if assistant else [], assistant.retriever.catalog if assistant else None
        )

    def follow_live(self) -> None:
        """Reopen the index if another generation went live; requests in flight keep the old one."""
        if self.assistant is None:
            return
        try:
            live = live_generation(self.settings)
        except Exception:
            log.warning(
                "could not read the live generation; answering from %s", self.assistant.kb.generation, exc_info=True
            )
            return
        if not live or live == self.assistant.kb.generation:
            return
        with self._reloading:
            if live != self.assistant.kb.generation:
                kb = open_index(self.settings, embedder=self.assistant.kb.embedder)
                self._use(Assistant(kb, self.settings))
                log.info("now answering from %s", kb.generation)

    # -- chat ----------------------------------------------------------------------------------

    def ask(self, question: str, towns: list[str], lists: list[str], turns: list[ChatTurn]):
        question = (question or "").strip()
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        self.follow_live()
        turns = list(turns or [])
        for turn in self.conversation.reply(question, towns or (), lists or (), turns):
            shown = [*turns, turn]
            yield messages(shown), shown, "", gr.skip(), gr.skip()
        yield messages(shown), shown, "", len(turns), self._target_label(shown, len(turns))

    def clear(self):
        return [], [], None, self._target_label([], None), render.placeholder_html(PANEL_HINT)

    def open_item(self, evt: gr.EventData) -> str:
        self.follow_live()
        item_id = getattr(evt, "item", None)
        item = self.by_id.get(item_id or "")
        if item is None:
            return render.error_html(f"没有找到事项 {item_id}")
        elsewhere = [self.browser.counterpart(item, town) for town in self.browser.other_towns(item.town)]
        return render.item_html(item, elsewhere=[other for other in elsewhere if other is not None])

    # -- feedback ------------------------------------------------------------------------------

    def like(self, turns: list[ChatTurn], evt: gr.LikeData):
        index = turn_of_message(evt.index)
        if not turns or index >= len(turns):
            return gr.skip(), gr.skip(), gr.skip(), "没有可反馈的回答。", gr.skip()
        rating = {True: "up", "Like": "up", False: "down", "Dislike": "down"}.get(evt.liked)
        record = feedback_for(turns[index], turns[:index])
        record.rating = rating
        status = self._save(record) or (
            "已记录，谢谢！可以在下面补充意见和应引用的事项。" if rating else "已取消评价。"
        )
        return index, self._target_label(turns, index), rating, status, gr.Accordion(open=True)

    def submit_feedback(self, target, rating, comment, expected, out_of_scope, turns: list[ChatTurn]):
        if target is None or not turns or target >= len(turns):
            return "请先提问，再对回答提交反馈。", gr.skip(), gr.skip(), gr.skip()
        comment = (comment or "").strip()
        limit = self.settings.feedback_max_chars
        if len(comment) > limit:
            return f"意见过长（{len(comment)}字），请精简到{limit}字以内再提交。", gr.skip(), gr.skip(), gr.skip()
        record = feedback_for(turns[target], turns[:target])
        record.rating = rating or None
        record.comment = comment
        record.expected = [e for e in (expected or []) if e in self.by_id]
        record.out_of_scope = bool(out_of_scope)
        failure = self._save(record)
        if failure:
            return failure, gr.skip(), gr.skip(), gr.skip()
        return f"已记录对第 {target + 1} 条回答的反馈，谢谢！", "", [], False

    def _save(self, record: Feedback) -> str:
        """Append the record; the reason in Chinese if it could not be saved."""
        try:
            self.feedback.append(record)
        except OSError as exc:
            log.exception("saving feedback failed")
            return f"反馈未能保存（{exc}），请联系管理员。"
        return ""

    @staticmethod
    def _target_label(turns: list[ChatTurn], index: int | None) -> str:
        """Plain text, never Markdown: it quotes the user's question."""
        if index is None or index >= len(turns):
            return render.plain_html("反馈对象：尚无回答")
        return render.plain_html(f"反馈对象：第 {index + 1} 条回答 —— “{turns[index].question}”")

    # -- browse --------------------------------------------------------------------------------

    def browse(self, text: str, town: str, kind: str, category: str, department: str):
        self.follow_live()
        found = self.browser.rows(Filters(text or "", town or ALL, kind or ALL, category or ALL, department or ALL))
        total = len(self.browser.items)
        return {"headers": COLUMNS, "data": found}, f"共 {len(found)} 项（全部 {total} 项）"

    def select_row(self, other_town: str | None, evt: gr.SelectData):
        item = self.by_id.get(id_of_row(evt.row_value or []) or "")
        if item is None:
            return None, gr.skip(), render.error_html("无法识别所选的行。")
        others = self.browser.other_towns(item.town)
        other = other_town if other_town in others else (others[0] if others else None)
        return item.id, gr.Dropdown(choices=others, value=other), self._side_by_side(item, other)

    def compare_with(self, item_id: str | None, other_town: str | None) -> str:
        item = self.by_id.get(item_id or "")
        if item is None:
            return gr.skip()
        return self._side_by_side(item, other_town)

    def _side_by_side(self, item: DutyItem, other_town: str | None) -> str:
        if not other_town:
            return render.item_html(item)
        return render.side_by_side_html(item, self.browser.counterpart(item, other_town), other_town)

    # -- about ---------------------------------------------------------------------------------

    def about(self) -> str:
        if self.assistant is None:
            return render.error_html(self.unavailable)
        kb = self.assistant.kb
        return render.about_html(
            kb.manifest,
            items=len(kb.items),
            llm=self.settings.llm_base_url and self.settings.llm_model,
            index_folder=str(kb.folder),
        )

    def examples(self) -> list[str]:
        """The example questions, naming the loaded townships (two-township ones need two)."""
        towns = self.browser.towns or ["某镇"]
        a, b = towns[0], towns[-1]
        return [e.format(a=a, b=b) for e in EXAMPLES if a != b or not ("{a}" in e and "{b}" in e)]


def build_app(assistant: Assistant | None, settings: Settings, unavailable: str = "") -> gr.Blocks:
    """The page; `unavailable` (why there is no assistant) is shown instead of answers."""
    app = App(assistant, settings, unavailable)
    towns = app.browser.towns
    kinds = [(kind.short, kind.value) for kind in ListKind]
    with gr.Blocks(title="履职助手", analytics_enabled=False) as demo:
        gr.HTML(
            '<div class="header"><h1 style="margin:0">履职助手</h1><p style="margin:2px 0 0 0;color:#6b7280">'
            "依据乡镇履职事项清单回答问题，每个回答都标明出处（乡镇·清单·序号）；清单没有的，如实说明。</p></div>",
            js_on_load=None,
        )
        if unavailable:
            gr.HTML(render.error_html(unavailable), js_on_load=None, elem_id="unavailable")
        turns = gr.State([])
        target = gr.State(None)
        admin = gr.State(None)  # the administrator's name once logged in: server-side, per session
        pending = gr.State(None)  # the previewed upload awaiting Publish
        with gr.Tabs():
            with gr.Tab("问答", id="chat"), gr.Row():
                with gr.Column(scale=3):
                    with gr.Row():
                        town_filter = gr.CheckboxGroup(towns, label="只查这些乡镇（不选为全部）", elem_id="town-filter")
                        list_filter = gr.CheckboxGroup(kinds, label="只查这些清单（不选为全部）", elem_id="list-filter")
                    chatbot = gr.Chatbot(
                        label="对话",
                        elem_id="chat",
                        height=560,
                        placeholder=WELCOME,
                        buttons=["copy"],
                        feedback_options=("Like", "Dislike"),
                        latex_delimiters=[],  # no formula rendering of anyone's text
                    )
                    with gr.Row():
                        box = gr.Textbox(
                            placeholder="输入问题，按回车发送",
                            show_label=False,
                            scale=6,
                            elem_id="question",
                            lines=1,
                            max_lines=4,
                            container=False,
                        )
                        send = gr.Button("发送", variant="primary", scale=1, min_width=80, elem_id="send")
                        clear = gr.Button("清空对话", scale=1, min_width=80, elem_id="clear")
                    gr.Examples(app.examples(), inputs=box, label="示例问题（点击填入）")
                    with gr.Accordion("对回答的反馈", open=False, elem_id="feedback") as feedback_form:
                        target_label = gr.Markdown(App._target_label([], None), elem_id="feedback-target")
                        rating = gr.Radio(RATINGS, label="评价", elem_id="feedback-rating")
                        comment = gr.Textbox(
                            label=f"意见（可选，{settings.feedback_max_chars}字以内）",
                            lines=2,
                            max_length=settings.feedback_max_chars,
                            elem_id="feedback-comment",
                        )
                        expected = gr.Dropdown(
                            [(f"{render.chip_label(i)} {i.title}", i.id) for i in app.browser.items],
                            multiselect=True,
                            label="应引用的事项（可选，可搜索）",
                            elem_id="feedback-expected",
                        )
                        out_of_scope = gr.Checkbox(
                            label="清单中没有这个问题，应回答“无法依据清单回答”", elem_id="feedback-oos"
                        )
                        submit = gr.Button("提交反馈", elem_id="feedback-submit")
                        status = gr.Markdown(elem_id="feedback-status")
                with gr.Column(scale=2):
                    panel = gr.HTML(
                        render.placeholder_html(PANEL_HINT),
                        js_on_load=CHIP_JS,
                        elem_id="item-panel",
                    )
            with gr.Tab("浏览清单", id="browse"):
                with gr.Row():
                    search = gr.Textbox(label="搜索（名称、职责、部门）", scale=3, elem_id="browse-search")
                    b_town = gr.Dropdown([ALL, *towns], value=ALL, label="乡镇", elem_id="browse-town")
                    b_kind = gr.Dropdown(
                        [ALL, *(k.short for k in ListKind)], value=ALL, label="清单", elem_id="browse-list"
                    )
                    b_category = gr.Dropdown(
                        [ALL, *app.browser.categories], value=ALL, label="事项类别", elem_id="browse-category"
                    )
                    b_department = gr.Dropdown(
                        [ALL, *app.browser.departments], value=ALL, label="部门", elem_id="browse-department"
                    )
                initial, count_text = app.browse("", ALL, ALL, ALL, ALL)
                count = gr.Markdown(count_text, elem_id="browse-count")
                table = gr.Dataframe(
                    initial,
                    headers=COLUMNS,
                    type="array",
                    interactive=False,
                    wrap=True,
                    max_height=420,
                    elem_id="browse-table",
                    column_widths=["8%", "8%", "6%", "12%", "40%", "26%"],
                )
                selected = gr.State(None)
                other = gr.Dropdown([], label="对照乡镇（同一事项在另一乡镇）", elem_id="browse-other")
                detail = gr.HTML(
                    render.placeholder_html("选中表格中的一行，查看事项全文及其在另一乡镇的对应事项。"),
                    js_on_load=None,
                    elem_id="browse-detail",
                )
            with gr.Tab("关于数据", id="about"):
                gr.HTML(app.about(), js_on_load=None, elem_id="about")
                with gr.Accordion("管理员登录", open=False, elem_id="admin-login", visible=app.data.admins.has_admins):
                    admin_user = gr.Textbox(label="用户名", value="admin", elem_id="admin-user")
                    admin_secret = gr.Textbox(label="密码", type="password", elem_id="admin-secret")
                    login = gr.Button("登录", elem_id="admin-submit")
                    login_status = gr.Markdown(elem_id="admin-status")
            with gr.Tab("数据管理", id="data", visible=False) as data_tab:
                gr.Markdown(
                    "上传新版清单 → 预览与当前索引的差异 → 发布。发布前不会改动当前索引；发布后问答立即使用新版本。"
                )
                uploads = gr.File(
                    label="清单文件（txt、docx、xlsx、有文字层的 pdf，可多选）",
                    file_count="multiple",
                    file_types=[".txt", ".docx", ".xlsx", ".pdf"],
                    type="filepath",
                    elem_id="data-upload",
                )
                replace_all = gr.Checkbox(label="替换全部：索引只保留本次上传的乡镇", elem_id="data-replace")
                with gr.Row():
                    check = gr.Button("预览", elem_id="data-preview-button")
                    publish = gr.Button("发布", variant="primary", interactive=False, elem_id="data-publish")
                data_status = gr.HTML(js_on_load=None, elem_id="data-status")
                preview_view = gr.HTML(js_on_load=None, elem_id="data-preview")
                gr.Markdown("### 索引版本")
                versions_view = gr.HTML(js_on_load=None, elem_id="data-versions")
                with gr.Row():
                    target_version = gr.Dropdown([], label="回滚到", elem_id="data-rollback-target", scale=3)
                    roll_back = gr.Button("回滚", elem_id="data-rollback", scale=1)
                gr.Markdown("### 操作记录")
                audit_view = gr.HTML(js_on_load=None, elem_id="data-audit")

        ask_outputs = [chatbot, turns, box, target, target_label]
        send.click(app.ask, [box, town_filter, list_filter, turns], ask_outputs, api_name="chat")
        box.submit(app.ask, [box, town_filter, list_filter, turns], ask_outputs, api_visibility="private")
        for cleared in (clear.click, chatbot.clear):
            cleared(app.clear, None, [chatbot, turns, target, target_label, panel], api_visibility="private")
        panel.click(app.open_item, None, panel, api_visibility="private")
        chatbot.like(app.like, turns, [target, target_label, rating, status, feedback_form], api_visibility="private")
        submit.click(
            app.submit_feedback,
            [target, rating, comment, expected, out_of_scope, turns],
            [status, comment, expected, out_of_scope],
            api_visibility="private",
        )
        filters = [search, b_town, b_kind, b_category, b_department]
        for control in filters:
            control.change(app.browse, filters, [table, count], api_visibility="private", trigger_mode="always_last")
        table.select(app.select_row, other, [selected, other, detail], api_visibility="private")
        other.input(app.compare_with, [selected, other], detail, api_visibility="private")
        tables = [versions_view, audit_view, target_version]
        login.click(
            app.data.login,
            [admin_user, admin_secret],
            [admin, data_tab, login_status, admin_secret, *tables],
            api_visibility="private",
        )
        check.click(
            app.data.preview, [admin, uploads, replace_all], [pending, preview_view, publish], api_visibility="private"
        )
        publish.click(
            app.data.publish,
            [admin, pending, replace_all],
            [data_status, pending, publish, *tables],
            api_visibility="private",
        )
        roll_back.click(app.data.rollback, [admin, target_version], [data_status, *tables], api_visibility="private")
    demo.queue(default_concurrency_limit=settings.ui_concurrency)
    return demo


THEME = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def page_options(max_upload_mb: float | None = None) -> dict:
    """How the page is served, alone (`launch`) or mounted in the API (`ui.api`): offline (system
    fonts, no analytics, no share link, no monitoring), and with an upload limit — Gradio's upload
    route exists on every app (only the administrators' 数据管理 tab uploads), and without a limit
    anyone who can reach the page could fill the disk (setting ui_max_upload_mb)."""
    if max_upload_mb is None:
        max_upload_mb = Settings.model_fields["ui_max_upload_mb"].default
    return {
        "max_file_size": int(max_upload_mb * 2**20),
        "theme": THEME,
        "css": CSS,
        "footer_links": ["api", "settings"],
        "run_history": False,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "show_error": False,
        "enable_monitoring": False,
    }


def launch(demo: gr.Blocks, host: str, port: int, *, block: bool = True, max_upload_mb: float | None = None) -> str:
    """Serve the page on its own; returns its URL."""
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        share=False,
        quiet=True,
        **page_options(max_upload_mb),
    )
    return url


def open_assistant(settings: Settings, say: Callable[[str], None]) -> tuple[Assistant | None, str]:
    """The assistant, building the index from the shipped lists on first use; or why not."""
    try:
        return Assistant.open(settings, build=False), ""
    except IndexMissing:
        pass
    except Exception as exc:
        log.exception("opening the index failed")
        return None, f"无法打开索引：{exc}。请运行 `duty-assistant ingest` 重建索引后重启。"
    say(f"首次使用：正在从 {', '.join(str(p) for p in settings.corpus)} 建立索引（约需一分钟）……")
    try:
        report = ingest(
            settings.corpus,
            settings,
            progress=lambda done, total: say(f"  已嵌入 {done}/{total} 项"),
        )
    except IngestLocked:
        return None, "另一个导入正在进行，请稍后刷新页面或重启本服务。"
    except Exception as exc:
        log.exception("building the index failed")
        return None, f"建立索引失败：{exc}"
    if report.errors:
        return None, "建立索引失败：" + "；".join(str(e) for e in report.errors)
    say(f"索引已建立：{report.added} 项，用时 {report.seconds:.0f} 秒。")
    try:
        return Assistant.open(settings, build=False), ""
    except Exception as exc:
        log.exception("opening the new index failed")
        return None, f"无法打开索引：{exc}"


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """`duty-assistant ui`: load the index once, then serve until interrupted."""

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    assistant, unavailable = open_assistant(settings, say)
    if unavailable:
        say(unavailable)
    demo = build_app(assistant, settings, unavailable)
    url = launch(
        demo, host or settings.ui_host, port or settings.ui_port, block=False, max_upload_mb=settings.ui_max_upload_mb
    )
    say(f"履职助手已启动：{url} （按 Ctrl+C 停止）")
    demo.block_thread()
