"""A small OpenAI-compatible chat server for tests: scripted replies, JSON or SSE, on 127.0.0.1.

Only the remote model's answers are fake; the client under test (langchain's ChatOpenAI over
httpx) is the real one. Every request body is recorded for assertions.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    text: str = ""
    pieces: list[str] | None = None  # how a streamed reply is split; default: a few characters each
    delay: float = 0.0  # seconds before answering (timeouts)
    raw: str | None = None  # send this body instead of a completion (malformed responses)
    status: int = 200
    forever: bool = False  # stream `text` again and again until the client goes away
    interval: float = 0.0  # seconds between streamed pieces

    def chunks(self) -> list[str]:
        if self.pieces is not None:
            return self.pieces
        return [self.text[i : i + 3] for i in range(0, len(self.text), 3)]


Script = Callable[[dict], Reply]


def user_text(request: dict) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []) if m.get("role") == "user")


def all_text(request: dict) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []))


MARKER = re.compile(r"〔[^〔〕]+〕")


def markers(request: dict) -> list[str]:
    """The citation markers of the items the request gave the model, in order."""
    return list(dict.fromkeys(MARKER.findall(user_text(request))))


@dataclass
class OpenAIStub:
    model: str = "stub-model"
    requests: list[dict] = field(default_factory=list)
    replies: deque = field(default_factory=deque)
    fallback: Script = lambda request: Reply("（未设定回复）")

    def __post_init__(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": stub.model, "object": "model"}]}))
                else:
                    self._send(404, json.dumps({"error": {"message": "not found"}}))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": "not found"}}))
                    return
                stub.requests.append(body)
                reply = stub.next_reply(body)
                time.sleep(reply.delay)
                try:
                    if reply.raw is not None or reply.status != 200:
                        self._send(reply.status, reply.raw or json.dumps({"error": {"message": "scripted failure"}}))
                    elif body.get("stream"):
                        self._stream(reply)
                    elif reply.forever:
                        self._trickle(reply)
                    else:
                        self._send(200, json.dumps(stub.completion(reply.text)))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _send(self, status: int, text: str, content_type: str = "application/json"):
                data = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                while True:
                    for piece in reply.chunks():
                        self._event(stub.chunk({"content": piece}, None))
                        time.sleep(reply.interval)
                    if not reply.forever:
                        break
                self._event(stub.chunk({}, "stop"))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _trickle(self, reply: Reply):
                """A JSON body that never ends: a byte at a time, forever."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(2**40))
                self.end_headers()
                self.wfile.write(b'{"id": "')
                while True:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(reply.interval or 0.05)

            def _event(self, payload: dict):
                self.wfile.write(b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *replies: Reply | Script) -> None:
        """Replies for the next requests, in order; a callable builds its reply from the request."""
        self.replies.extend(replies)

    def reset(self) -> None:
        self.requests.clear()
        self.replies.clear()

    def next_reply(self, request: dict) -> Reply:
        reply = self.replies.popleft() if self.replies else self.fallback
        return reply(request) if callable(reply) else reply

    def completion(self, text: str) -> dict:
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": len(text), "total_tokens": 100 + len(text)},
        }

    def chunk(self, delta: dict, finish: str | None) -> dict:
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
