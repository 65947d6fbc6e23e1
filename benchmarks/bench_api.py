"""Load on the HTTP API: N concurrent clients for D seconds against /v1/ask and /v1/chat/completions.

    .venv/bin/python benchmarks/bench_api.py                      # starts `duty-assistant serve` itself
    .venv/bin/python benchmarks/bench_api.py --duration 15        # shorter run
    .venv/bin/python benchmarks/bench_api.py --url http://127.0.0.1:8000 --key duty-…   # a running service

Each client loops: /v1/ask, chat completion, streamed chat completion, over eval questions of
every kind (a third of the chats carry a follow-up turn). The server it starts checks a key on
every request (as a public deployment would) with the rate limit lifted. Prints requests/s and
p50/p95/p99 per endpoint; exits 1 on any error. Target (no LLM, 2 cores): 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def questions() -> list[str]:
    lines = (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [r["question"] for r in records if "history" not in r][::3]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


async def one(client: httpx.AsyncClient, kind: str, question: str, turn: int) -> str | None:
    """One request; an error description if it did not end in a proper answer."""
    if kind == "ask":
        response = await client.post("/v1/ask", json={"question": question})
        if response.status_code != 200 or "citations" not in response.json():
            return f"ask {response.status_code}: {response.text[:200]}"
        return None
    messages = [{"role": "user", "content": question}]
    if turn % 3 == 0:
        messages = [
            {"role": "user", "content": "二工镇私自宰羊归谁管？"},
            {"role": "assistant", "content": "…"},
            {"role": "user", "content": "那半截沟镇呢？"},
        ]
    body = {"model": "duty-assistant", "messages": messages, "stream": kind == "stream"}
    if kind == "chat":
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code != 200 or "citations" not in response.json():
            return f"chat {response.status_code}: {response.text[:200]}"
        return None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line async for line in response.aiter_lines() if line]
    if response.status_code != 200 or lines[-1:] != ["data: [DONE]"] or "citations" not in json.loads(lines[-2][6:]):
        return f"stream {response.status_code}: {lines[-3:]}"
    return None


async def client_loop(index: int, url: str, key: str, until: float, pool: list[str], results: dict, errors: list):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    kinds = ("ask", "chat", "stream")
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        turn = index
        while time.perf_counter() < until:
            kind = kinds[turn % 3]
            question = pool[turn % len(pool)]
            started = time.perf_counter()
            try:
                error = await one(client, kind, question, turn // 3)
            except Exception as exc:
                error = f"{kind} {type(exc).__name__}: {exc}"
            results[kind].append(time.perf_counter() - started)
            if error:
                errors.append(error)
            turn += 1


def start_server(key: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DUTY_API_KEYS": key,
        "DUTY_API_RATE_LIMIT": "1000000/minute",
        "DUTY_API_KEYS_FILE": str(Path(tempfile.mkdtemp()) / "access.json"),
    }  # only the env key
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--port", str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # first use builds the index
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("serve exited before it was ready")
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("serve did not become ready")


async def main_async(url: str, key: str, clients: int, duration: float) -> int:
    pool = questions()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"} if key else {}) as warm:
        await one(warm, "ask", pool[0], 1)
    results: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    started = time.perf_counter()
    until = started + duration
    await asyncio.gather(*(client_loop(i, url, key, until, pool, results, errors) for i in range(clients)))
    elapsed = time.perf_counter() - started
    total = sum(len(v) for v in results.values())
    print(
        f"{clients} clients, {elapsed:.0f} s, {total} requests, {total / elapsed:.1f} requests/s, {len(errors)} errors"
    )
    print(f"{'endpoint':<22}{'n':>6}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}")
    names = {"ask": "/v1/ask", "chat": "chat/completions", "stream": "chat (stream)"}
    every = [s for v in results.values() for s in v]
    for kind, seconds in [*results.items(), ("all", every)]:
        print(
            f"{names.get(kind, kind):<22}{len(seconds):>6}{len(seconds) / elapsed:>8.1f}"
            f"{percentile(seconds, 0.5):>8.2f}{percentile(seconds, 0.95):>8.2f}{percentile(seconds, 0.99):>8.2f}"
        )
    for error in errors[:5]:
        print("error:", error)
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="A running service; default: start `duty-assistant serve`.")
    parser.add_argument("--key", default="", help="API key for --url.")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60, help="Seconds of load.")
    args = parser.parse_args()
    process = None
    key = args.key
    url = args.url
    if not url:
        key = "duty-bench-" + secrets.token_urlsafe(16)
        process, url = start_server(key)
    try:
        code = asyncio.run(main_async(url.rstrip("/"), key, args.clients, args.duration))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
