"""`duty-assistant serve`: the HTTP JSON API, an OpenAI-compatible chat endpoint and the web app in one process.

Other systems (Open WebUI, Dify, hotline panels, bots) talk to the same `Assistant` as the
CLI and the web app, so every front-end answers identically. Answers keep their citations on
every path: in the text as 〔镇·清单·第N项〕 markers, and structured in `citations`.

Order of checks for /v1/*: key (401) → rate limit (429) → content type (415) → body size
(413) → JSON and fields (400, naming the field) → unknown items (404). Errors are OpenAI-style
JSON (`{"error": {"message", "type", "param", "code"}}`) and never carry a traceback.

API docs: /docs (Swagger UI) and /redoc are served from the `fastapi-offline` package's
bundled assets, so they work without internet; /openapi.json is the schema.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.access import AccessStore
from assistant.answering.answer import Answer
from assistant.answering.citations import MARKER, marker_id
from assistant.answering.departments import department_key
from assistant.answering.followup import Turn
from assistant.answering.pipeline import Response as AnswerStream
from assistant.items import DutyItem
from assistant.service import Assistant
from assistant.settings import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("duty.access")

ListName = Literal["basic", "coordinated", "withdrawn"]
MAX_PAGE = 500
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")


# -- errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    """A refusal the client can act on: status, Chinese message, and the field at fault."""

    TYPES = {401: "authentication_error", 429: "rate_limit_error", 503: "service_unavailable"}

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def response(self) -> JSONResponse:
        kind = self.TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# pydantic error type → what to tell the user about the field
FIELD_MESSAGES = {
    "missing": "缺少此字段",
    "extra_forbidden": "不支持此字段",
    "string_type": "应为字符串",
    "bool_type": "应为 true 或 false",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "list_type": "应为数组",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "too_short": "不能为空",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
}


UNION_TAGS = {"str", "int", "bool", "float", "none"}


def is_union_tag(part: Any) -> bool:
    """pydantic names the member of a union it tried ("str", "list[ContentPart]", "EarlierQuestion")."""
    return isinstance(part, str) and (part in UNION_TAGS or "[" in part or part[:1].isupper())


def field_name(loc: Sequence[Any]) -> str:
    """("body", "messages", 0, "content", "str") → "messages[0].content"."""
    name = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        if is_union_tag(part):
            break
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def validation_error(exc: RequestValidationError) -> ApiError:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return ApiError(400, "请求体不是合法的 JSON", "body", "invalid_json")
    param = field_name(first.get("loc", ()))
    if any(map(is_union_tag, first.get("loc", ()))):
        detail = "类型不对"
    elif first["type"] == "literal_error":
        detail = f"取值应为 {first.get('ctx', {}).get('expected', '')}"
    else:
        detail = FIELD_MESSAGES.get(first["type"], first.get("msg", "取值无效"))
    if param == "body" and first["type"] in ("model_attributes_type", "dict_type", "missing"):
        return ApiError(400, "请求体应为 JSON 对象", "body", "invalid_body")
    return ApiError(400, f"字段 {param}：{detail}", param, "invalid_field")


# -- request and response shapes ---------------------------------------------------------------


class EarlierQuestion(BaseModel):
    """An earlier turn; a previous /v1/ask response can be passed back as it is."""

    model_config = ConfigDict(extra="ignore")
    question: StrictStr


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: StrictStr = Field(description="问题")
    towns: list[StrictStr] = Field(default_factory=list, description="只查这些乡镇")
    lists: list[ListName] = Field(default_factory=list, description="只查这些清单")
    history: list[StrictStr | EarlierQuestion] = Field(
        default_factory=list, description="此前的问题（最早的在前），用于追问；可直接传回此前的 /v1/ask 回答"
    )
    use_llm: StrictBool | None = Field(default=None, description="强制使用/不用语言模型；默认：已配置则用")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr
    text: StrictStr | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """OpenAI chat completions; sampling parameters are accepted and ignored, `towns`/`lists`/`use_llm` are ours."""

    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = False
    towns: list[StrictStr] = Field(default_factory=list)
    lists: list[ListName] = Field(default_factory=list)
    use_llm: StrictBool | None = None


def item_json(item: DutyItem) -> dict:
    return {"id": item.id, "citation": item.citation, **item.to_dict(with_location=False)}


def answer_json(answer: Answer) -> dict:
    """The `ask --json` contract, unchanged."""
    return answer.to_json()


# -- consuming the assistant -------------------------------------------------------------------


def answer_parts(response: AnswerStream) -> Iterator[tuple[str, Answer | None]]:
    """The one place that knows the shape of `Assistant.stream`: ("chunk", None)…, then ("", Answer)."""
    for text in response:
        yield text, None
    yield "", response.answer


@dataclass
class Question:
    """A validated question with its filters and the earlier turns, ready for the assistant."""

    text: str
    towns: tuple[str, ...]
    lists: tuple[str, ...]
    earlier: list[tuple[str, str | None]]  # (question, the assistant's reply to it if the client sent it)
    use_llm: bool | None


# -- the service -------------------------------------------------------------------------------


class Service:
    """Everything the routes share: the assistant, key store, rate limiter, metrics."""

    def __init__(self, assistant: Assistant | None, settings: Settings, store: AccessStore, unavailable: str = ""):
        self.assistant = assistant
        self.settings = settings
        self.store = store
        self.unavailable = unavailable or "索引未加载"
        self.limiter = anyio.CapacityLimiter(settings.api_concurrency)
        self.rate = parse_limit(settings.api_rate_limit)
        self.rate_limiter = MovingWindowRateLimiter(MemoryStorage())
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "duty_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "duty_http_request_seconds",
            "Time to the last byte of the response.",
            ["route"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.answers = Counter(
            "duty_answers",
            "Answers given, by generator and whether the lists covered the question.",
            ["generator", "abstained"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "duty_llm_fallbacks",
            "Answers that fell back to extractive text although a model "
            "is configured (model unreachable, slow, or its answer rejected).",
            registry=self.registry,
        )
        towns = assistant.kb.towns if assistant else []
        self.places = (
            {*towns, *(i.county for i in assistant.kb.items), *(i.prefecture for i in assistant.kb.items)}
            if assistant
            else set()
        )

    @property
    def ready(self) -> Assistant:
        if self.assistant is None:
            raise ApiError(503, f"服务暂不可用：{self.unavailable}", code="not_ready")
        return self.assistant

    # -- access --------------------------------------------------------------------------------

    def refusal(self, scope: dict) -> ApiError | None:
        """401 or 429 for a /v1 request, or None; records the key's name for the access log."""
        headers = dict(scope.get("headers") or [])
        client = (scope.get("client") or ("?", 0))[0]
        who = f"ip:{client}"
        if self.store.has_keys:
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            name = self.store.check_key(token.strip()) if scheme.lower() == "bearer" else None
            if name is None:
                message = "API 密钥无效" if token else "缺少 API 密钥（请求头 Authorization: Bearer <密钥>）"
                return ApiError(
                    401, message, "Authorization", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
                )
            who = f"key:{name}"
        scope.setdefault("state", {})["caller"] = who
        if not self.rate_limiter.hit(self.rate, who):
            reset, _ = self.rate_limiter.get_window_stats(self.rate, who)
            wait = max(1, math.ceil(reset - time.time()))
            return ApiError(
                429,
                f"请求过于频繁（上限 {self.settings.api_rate_limit}），请 {wait} 秒后再试",
                code="rate_limited",
                headers={"Retry-After": str(wait)},
            )
        return None

    # -- questions -----------------------------------------------------------------------------

    def check_question(self, text: str, param: str) -> str:
        text = text.strip()
        if not text:
            raise ApiError(400, f"字段 {param}：问题不能为空", param, "empty_question")
        limit = self.settings.max_question_chars
        if len(text) > limit:
            raise ApiError(
                400, f"字段 {param}：问题过长（{len(text)}字），请精简到{limit}字以内", param, "question_too_long"
            )
        return text

    def check_towns(self, towns: Sequence[str], param: str = "towns") -> tuple[str, ...]:
        known = self.ready.kb.towns
        unknown = [t for t in towns if t not in known]
        if unknown:
            raise ApiError(
                400, f"字段 {param}：没有乡镇 {'、'.join(unknown)}（已有：{'、'.join(known)}）", param, "unknown_town"
            )
        return tuple(towns)

    def from_ask(self, body: AskRequest) -> Question:
        earlier = [(h if isinstance(h, str) else h.question, None) for h in body.history]
        for i, (text, _) in enumerate(earlier):
            self.check_question(text, f"history[{i}]")
        return Question(
            self.check_question(body.question, "question"),
            self.check_towns(body.towns),
            tuple(body.lists),
            earlier,
            body.use_llm,
        )

    def from_chat(self, body: ChatRequest) -> Question:
        """The last user message is the question; earlier user messages (with the reply after each) the history."""
        if len(body.messages) > self.settings.api_max_messages:
            raise ApiError(
                400, f"字段 messages：最多 {self.settings.api_max_messages} 条消息", "messages", "too_many_messages"
            )
        last = body.messages[-1]
        if last.role != "user":
            raise ApiError(400, "字段 messages：最后一条消息应来自 user", "messages", "last_message_not_user")
        question = self.check_question(last.text, f"messages[{len(body.messages) - 1}].content")
        earlier: list[tuple[str, str | None]] = []
        for message in body.messages[:-1]:
            if message.role == "user" and message.text.strip():
                earlier.append((message.text.strip()[: self.settings.max_question_chars], None))
            elif message.role == "assistant" and earlier and earlier[-1][1] is None:
                earlier[-1] = (earlier[-1][0], message.text)
        return Question(question, self.check_towns(body.towns), tuple(body.lists), earlier, body.use_llm)

    def history(self, question: Question) -> list[Turn]:
        """Earlier turns rebuilt by asking each earlier question again (extractive, ~20 ms each).

        Re-asking is robust: it needs nothing from the client but the questions, so it works
        whatever a chat client did to our earlier text. When the client did send the earlier
        reply and it carries citation markers of known items, those are what the user saw
        (e.g. an LLM answer citing a subset), so they replace the re-derived citations.
        """
        assistant = self.ready
        turns: list[Turn] = []
        for text, reply in (
            question.earlier[-self.settings.api_history_turns :] if self.settings.api_history_turns else []
        ):
            answer = assistant.ask(text, towns=question.towns, lists=question.lists, history=turns, use_llm=False)
            shown = self.cited_in(reply or "")
            if shown:
                answer = replace(answer, citations=shown)
            turns.append(Turn(text, answer))
        return turns

    def cited_in(self, text: str) -> list[DutyItem]:
        by_id = self.ready.kb.by_id
        ids = dict.fromkeys(marker_id(m) for m in MARKER.finditer(text))
        return [by_id[i] for i in ids if i in by_id]

    def answer(self, question: Question) -> Answer:
        """Blocking: run in a worker thread."""
        answer = self.ready.ask(
            question.text,
            towns=question.towns,
            lists=question.lists,
            history=self.history(question),
            use_llm=question.use_llm,
        )
        self.observe(answer, question)
        return answer

    def stream(self, question: Question) -> Iterator[tuple[str, Answer | None]]:
        """Blocking iterator: advance it in a worker thread."""
        history = self.history(question)
        parts = self.ready.stream(
            question.text, towns=question.towns, lists=question.lists, history=history, use_llm=question.use_llm
        )
        for chunk, answer in answer_parts(parts):
            if answer is not None:
                self.observe(answer, question)
            yield chunk, answer

    def observe(self, answer: Answer, question: Question) -> None:
        self.answers.labels(answer.generator, str(answer.abstained).lower()).inc()
        attempted = bool(self.settings.llm_base_url) and question.use_llm is not False
        if attempted and answer.generator != "llm" and answer.meta.get("llm_called", True):
            self.fallbacks.inc()

    async def run(self, function, *args):
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    # -- items ---------------------------------------------------------------------------------

    def items(self, town: str | None, kind: str | None, category: str | None, department: str | None) -> list[DutyItem]:
        assistant = self.ready
        if town:
            self.check_towns([town], "town")
        wanted = department_key(department, self.places) if department else None
        return [
            item
            for item in assistant.kb.items
            if (not town or item.town == town)
            and (not kind or item.list.value == kind)
            and (not category or item.category == category)
            and (wanted is None or wanted in {department_key(d, self.places) for d in item.involved_departments})
        ]


# -- the middleware: gate, metrics, access log -------------------------------------------------


class Gate:
    """Pure ASGI, so it sees every request before FastAPI reads the body, and streams after they end."""

    def __init__(self, app, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = None
            if scope["path"].startswith("/v1/"):
                refusal = self.service.refusal(scope)
                if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                    refusal, receive = await self.read_body(scope, receive)
            if refusal is not None:
                await refusal.response()(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        finally:
            self.record(scope, status[0], time.perf_counter() - started)

    async def read_body(self, scope, receive):
        """415 for a non-JSON body, 413 past the size limit; otherwise the body, replayed to the app."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            shown = media or "（无）"
            return ApiError(
                415, f"Content-Type 应为 application/json，收到 {shown}", "Content-Type", "unsupported_media_type"
            ), receive
        limit = self.service.settings.api_max_body_bytes
        too_big = ApiError(413, f"请求体超过 {limit} 字节", "body", "body_too_large")
        if int(headers.get("content-length", "0") or 0) > limit:
            return too_big, receive
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return too_big, receive
            if not message.get("more_body"):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, replay

    def record(self, scope, status: int, seconds: float) -> None:
        path = scope["path"]
        route = scope.get("route")
        if path.startswith("/v1/") or path in OPEN_PATHS or path.startswith(("/docs", "/redoc", "/openapi")):
            label = getattr(route, "path", None) or "unmatched"
        else:
            label = "web"
        self.service.requests.labels(scope["method"], label, str(status)).inc()
        self.service.latency.labels(label).observe(seconds)
        if label == "web" and not access_log.isEnabledFor(logging.DEBUG):
            return  # the page's own asset and queue traffic would drown the API lines
        state = scope.get("state") or {}
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "method": scope["method"],
            "path": path,
            "status": status,
            "ms": round(seconds * 1000, 1),
            "caller": state.get("caller"),
            "client": (scope.get("client") or ("",))[0],
        }
        if self.service.settings.log_questions and state.get("question"):
            line["question"] = state["question"]
        access_log.info(json.dumps(line, ensure_ascii=False))


# -- the app -----------------------------------------------------------------------------------


def create_app(
    assistant: Assistant | None,
    settings: Settings,
    *,
    store: AccessStore | None = None,
    web: bool = True,
    web_login: bool = False,
    unavailable: str = "",
) -> FastAPI:
    """The API (and, with `web`, the Gradio app at /); `web_login` puts the web app behind the key store."""
    store = store or AccessStore.from_settings(settings)
    service = Service(assistant, settings, store, unavailable)
    app = FastAPIOffline(
        title="履职助手 API",
        version="1",
        description="依据乡镇履职事项清单回答问题，并注明出处。OpenAI 兼容：/v1/chat/completions。",
        swagger_ui_parameters={"validatorUrl": None},  # no call to the public spec validator
    )
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "没有这个地址", 405: "不支持此请求方法"}.get(exc.status_code, str(exc.detail))
        return ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None).response()

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("request failed: %s %s", request.method, request.url.path)
        return ApiError(500, "服务内部错误，请稍后再试", code="internal_error").response()

    @app.get("/healthz", tags=["运维"], summary="进程存活")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["运维"], summary="索引已加载：版本与事项数")
    async def readyz():
        if service.assistant is None:
            return JSONResponse({"status": "unavailable", "reason": service.unavailable}, status_code=503)
        kb = service.assistant.kb
        return {"status": "ready", "generation": kb.folder.name, "items": len(kb.items), "towns": kb.towns}

    @app.get("/metrics", tags=["运维"], summary="Prometheus 指标")
    async def metrics():
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    # Declares the Bearer scheme for /docs; the check itself runs in Gate, before the body is read.
    api = APIRouter(prefix="/v1", dependencies=[Depends(HTTPBearer(auto_error=False, description="API 密钥"))])

    @api.post("/ask", tags=["问答"], summary="`ask --json` 的 HTTP 版本")
    async def ask(body: AskRequest, request: Request) -> dict:
        question = service.from_ask(body)
        note_question(request, question.text)
        return answer_json(await service.run(service.answer, question))

    @api.get("/items/{item_id}", tags=["事项"], summary="一个事项的全文，如 二工镇:coordinated:22")
    async def item(item_id: str) -> dict:
        found = service.ready.kb.by_id.get(item_id)
        if found is None:
            raise ApiError(
                404,
                f"字段 item_id：没有事项 {item_id}（格式：乡镇:basic|coordinated|withdrawn:序号）",
                "item_id",
                "unknown_item",
            )
        return item_json(found)

    @api.get("/items", tags=["事项"], summary="按乡镇、清单、类别、部门筛选的完整列表（分页）")
    async def items(
        town: str | None = None,
        list: ListName | None = None,
        category: str | None = None,
        department: str | None = None,
        offset: int = Query(default=0, ge=0),
        limit: int | None = Query(default=None, ge=1, le=MAX_PAGE),
    ) -> dict:
        found = service.items(town, list, category, department)
        size = limit or settings.api_page_size
        page = found[offset : offset + size]
        after = offset + len(page)
        return {
            "total": len(found),
            "offset": offset,
            "limit": size,
            "next_offset": after if after < len(found) else None,
            "items": [item_json(i) for i in page],
        }

    @api.get("/models", tags=["OpenAI 兼容"], summary="可用模型（一个）")
    async def models() -> dict:
        return {"object": "list", "data": [model_card(settings)]}

    @api.get("/models/{model_id}", tags=["OpenAI 兼容"], include_in_schema=False)
    async def model(model_id: str) -> dict:
        if model_id != settings.api_model_name:
            raise ApiError(404, f"字段 model：没有模型 {model_id}", "model", "model_not_found")
        return model_card(settings)

    @api.post("/chat/completions", tags=["OpenAI 兼容"], summary="聊天补全（支持 stream）；回答附带 citations")
    async def chat(body: ChatRequest, request: Request):
        question = service.from_chat(body)
        note_question(request, question.text)
        completion = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            return StreamingResponse(
                sse(service, question, completion),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        answer = await service.run(service.answer, question)
        return {
            **completion_head(completion, "chat.completion", settings),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer.full_text()}, "finish_reason": "stop"}
            ],
            **extras(answer),
        }

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def elsewhere(path: str, request: Request):
        """Unknown /v1 paths answer in our JSON, not the web app's (mounted at /)."""
        if any(getattr(r, "path_regex", None) and r.path_regex.match(request.url.path) for r in api.routes[:-1]):
            raise ApiError(405, f"{request.method} 不适用于 {request.url.path}", code="method_not_allowed")
        raise ApiError(404, f"没有这个地址：{request.url.path}", code="not_found")

    app.include_router(api)
    if web:
        mount_web(app, assistant, settings, store, web_login, unavailable)
    app.add_middleware(Gate, service=service)  # outside FastAPI's routing: refusals and metrics cover everything
    return app


def note_question(request: Request, text: str) -> None:
    request.state.question = text


def model_card(settings: Settings) -> dict:
    return {"id": settings.api_model_name, "object": "model", "created": 0, "owned_by": "duty-assistant"}


def completion_head(completion: str, kind: str, settings: Settings) -> dict:
    return {"id": completion, "object": kind, "created": int(time.time()), "model": settings.api_model_name}


def extras(answer: Answer) -> dict:
    """Our fields beside OpenAI's: structured citations, so clients that know us can render chips."""
    data = answer.to_json()
    return {key: data[key] for key in ("citations", "abstained", "generator", "invalid_citations", "related")}


async def sse(service: Service, question: Question, completion: str) -> AsyncIterator[str]:
    """OpenAI chat-completion chunks; the last one carries finish_reason and the citations, then [DONE]."""
    head = completion_head(completion, "chat.completion.chunk", service.settings)

    def event(delta: dict, finish: str | None = None, **more) -> str:
        payload = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    parts = service.stream(question)
    try:
        while True:
            step = await service.run(next, parts, None)
            if step is None:
                break
            chunk, answer = step
            if answer is not None:
                if answer.related:  # the declined text refers to them; a plain chat client shows only text
                    yield event({"content": answer.full_text().removeprefix(answer.text)})
                yield event({}, "stop", **extras(answer))
                break
            if chunk:
                yield event({"content": chunk})
    except Exception:
        log.exception("streamed answer failed")
        error = {"message": "服务内部错误，回答未完成", "type": "server_error", "param": None, "code": "internal_error"}
        yield f"data: {json.dumps({'error': error}, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def mount_web(
    app: FastAPI, assistant: Assistant | None, settings: Settings, store: AccessStore, login: bool, unavailable: str
) -> None:
    """The same Gradio app as `duty-assistant ui`, at /; behind a login (same store) when `login`."""
    import gradio as gr

    from ui.app import build_app, page_options

    demo = build_app(assistant, settings, unavailable)
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=settings.api_host,
        server_port=settings.api_port,
        auth=store.check_login if login else None,
        auth_message="请用管理员分配的名称和密码（或 API 密钥）登录。",
        **page_options(settings.ui_max_upload_mb),
    )


# -- serving -----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


class Refused(RuntimeError):
    """`serve` will not start as asked (e.g. a public bind without keys)."""


def check_bind(host: str, store: AccessStore) -> None:
    if not is_loopback(host) and not store.has_keys:
        raise Refused(
            f"拒绝在 {host} 上开放服务：还没有 API 密钥。先运行 `duty-assistant keys add 名称` 生成密钥"
            "（或设置 DUTY_API_KEYS），或只在 127.0.0.1 上提供服务。"
        )


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """`duty-assistant serve`: load the index once, then serve the API and the web app until SIGINT/SIGTERM."""
    import uvicorn

    from ui.app import open_assistant

    host, port = host or settings.api_host, port or settings.api_port
    store = AccessStore.from_settings(settings)
    check_bind(host, store)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    assistant, unavailable = open_assistant(settings, say)
    if unavailable:
        say(unavailable)
    app = create_app(
        assistant,
        replace_settings(settings, host, port),
        store=store,
        web_login=not is_loopback(host),
        unavailable=unavailable,
    )
    say(f"履职助手服务已启动：http://{host}:{port}/ （网页），API：/v1，文档：/docs；按 Ctrl+C 停止。")
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=settings.api_shutdown_timeout,
    )


def replace_settings(settings: Settings, host: str, port: int) -> Settings:
    return settings.model_copy(update={"api_host": host, "api_port": port})
