"""Load on the web app: N questions at once through the chat endpoint, latency percentiles and errors.

    .venv/bin/python benchmarks/bench_ui_load.py                  # starts the app in-process
    .venv/bin/python benchmarks/bench_ui_load.py --url http://127.0.0.1:7860/   # a running app

Target (no LLM, 2 cores): no errors, p95 under 3 s for 20 concurrent questions.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "localhost"}


def questions(count: int) -> list[str]:
    """A spread of eval questions over every kind, the same on every run."""
    from assistant import jsonl

    records = [record for _, record in jsonl.read(ROOT / "eval" / "questions.jsonl")]
    step = max(1, len(records) // count)
    return [r["question"] for r in records[::step]][:count]


def ask(client, question: str) -> tuple[float, str | None]:
    """Seconds until the finished answer, and an error description if it failed."""
    started = time.perf_counter()
    try:
        chat, *_ = client.predict(question, [], [], api_name="/chat")
    except Exception as exc:
        return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    reply = _text(chat[-1]["content"]) if chat else ""
    if 'class="error"' in reply or 'class="answer' not in reply:
        return seconds, f"no answer for {question!r}: {reply[:200]}"
    return seconds, None


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def start_app() -> tuple[object, str]:
    from assistant.settings import Settings
    from ui.app import build_app, launch, open_assistant

    settings = Settings()
    assistant, unavailable = open_assistant(settings, say=lambda message: print(message, file=sys.stderr))
    if unavailable:
        raise SystemExit(unavailable)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_app(assistant, settings)
    return demo, launch(demo, "127.0.0.1", port, block=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="A running app on this machine; default: start one in-process.")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="Bursts of `concurrency` questions.")
    args = parser.parse_args()

    demo = None
    url = args.url
    if url is None:
        demo, url = start_app()
    if urlparse(url).hostname not in LOOPBACK:
        raise SystemExit(f"refusing to load-test {url}: only 127.0.0.1")

    from gradio_client import Client

    client = Client(url, verbose=False)
    burst = questions(args.concurrency)
    ask(client, burst[0])  # warm-up: first query loads caches
    idle = [ask(client, question)[0] for question in burst[:5]]
    latencies, errors = [], []
    wall_started = time.perf_counter()
    try:
        for _ in range(args.rounds):
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                for seconds, error in pool.map(lambda q: ask(client, q), burst):
                    latencies.append(seconds)
                    if error:
                        errors.append(error)
    finally:
        wall = time.perf_counter() - wall_started
        if demo is not None:
            demo.close()

    print(f"web app load: {args.rounds} bursts of {args.concurrency} concurrent questions against {url}")
    print(f"  one at a time (idle app): median {statistics.median(idle):.3f} s")
    print(f"  requests     {len(latencies)}")
    print(f"  errors       {len(errors)}")
    print(f"  latency p50  {statistics.median(latencies):.3f} s")
    print(f"  latency p95  {percentile(latencies, 0.95):.3f} s")
    print(f"  latency max  {max(latencies):.3f} s")
    print(f"  throughput   {len(latencies) / wall:.1f} questions/s")
    for error in errors[:5]:
        print(f"  error: {error}")
    target = not errors and percentile(latencies, 0.95) < 3.0
    print(f"  target (no errors, p95 < 3 s): {'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
