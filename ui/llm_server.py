"""Fully offline generation, opt-in: serve a local GGUF model as an OpenAI-compatible endpoint.

`duty-assistant llm-server --model FILE.gguf` runs llama.cpp (the `xllamacpp` wheel) on
127.0.0.1; pointing `DUTY_LLM_BASE_URL` at it sends answers through the same chain as any
remote Qwen / DeepSeek / vLLM / Ollama server. Nothing in the default install or the test
suite needs it.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # never another interface: the server has no authentication
GGUF_MAGIC = b"GGUF"


class LLMServerError(RuntimeError):
    """A model or runtime problem, phrased for the user."""


@dataclass
class LocalServer:
    handle: object  # the xllamacpp.Server; the HTTP server lives as long as this object
    url: str  # base URL with /v1, for DUTY_LLM_BASE_URL
    model: Path


def check_model(path: Path) -> Path:
    if not path.is_file():
        raise LLMServerError(f"{path}: 模型文件不存在")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise LLMServerError(f"{path}: 不是 GGUF 模型文件")
    return path


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def serve(
    model: Path, *, port: int = 8080, context: int = 8192, threads: int | None = None, ready_seconds: float = 120.0
) -> LocalServer:
    """Load the model and start serving; returns once the server answers its health check."""
    check_model(model)
    try:
        import xllamacpp
    except ImportError:
        raise LLMServerError("本地模型服务需要 xllamacpp：pip install xllamacpp") from None
    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.hostnames = [HOST]
    params.port = port
    params.n_ctx = context
    params.n_parallel = 1
    params.model_alias = {model.stem}
    params.cpuparams.n_threads = threads or os.cpu_count() or 1
    params.cpuparams_batch.n_threads = threads or os.cpu_count() or 1
    try:
        handle = xllamacpp.Server(params)
    except Exception as exc:
        raise LLMServerError(f"{model}: 无法加载模型（{exc}）") from None
    base = handle.listening_address.rstrip("/")
    wait_until_healthy(base, ready_seconds)
    return LocalServer(handle, f"{base}/v1", model)


def wait_until_healthy(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise LLMServerError(f"模型服务 {base} 在 {seconds:.0f} 秒内没有就绪")
