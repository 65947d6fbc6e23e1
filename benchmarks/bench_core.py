"""Core benchmark: ingest, re-ingest, `ask --json -` throughput and cold `ask`, printed as figures.

Run: `make bench` (or `python benchmarks/bench_core.py`). Uses a fresh temporary home so the
numbers include building the index from the shipped corpus.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from assistant import jsonl
from assistant.index import ingest
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings
from eval.questions import load_questions

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "eval" / "questions.jsonl"


def cli(args: list[str], home: Path, stdin: str = "") -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "DUTY_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ui.cli", *args], input=stdin, capture_output=True, text=True, env=env, check=True
    )
    return time.perf_counter() - started, done


def answer_latency(assistant: Assistant) -> dict:
    """Seconds per extractive answer over the dev split's questions (one warm-up first)."""
    questions = [q.question for q in load_questions(split="dev") if not q.history]
    assistant.ask(questions[0])
    seconds = []
    for question in questions:
        started = time.perf_counter()
        assistant.ask(question)
        seconds.append(time.perf_counter() - started)
    return {"n": len(seconds), "p50": float(np.percentile(seconds, 50)), "p95": float(np.percentile(seconds, 95))}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings(home=home, corpus=[CORPUS_DIR])
        first = ingest(settings.corpus, settings)
        again = ingest(settings.corpus, settings)
        questions = [record["question"] for _, record in jsonl.read(QUESTIONS)][:50]
        batch_seconds, batch = cli(["ask", "--json", "-"], home, "\n".join(questions) + "\n")
        answered = len(batch.stdout.splitlines())
        cold = [cli(["ask", "--json", q], home)[0] for q in questions[:3]]
        latency = answer_latency(Assistant.open(settings, build=False))

    rows = [
        (
            "ingest, shipped corpus (486 items, incl. model load)",
            f"{first.seconds:.1f} s",
            f"{first.embedded} embedded",
        ),
        ("re-ingest, unchanged", f"{again.seconds:.2f} s", f"{again.embedded} embedded"),
        ("ask --json -, 50 questions, one process", f"{batch_seconds:.1f} s", f"{answered} answers, target < 10 s"),
        ("cold single ask (process start to answer), best of 3", f"{min(cold):.1f} s", "target < 5 s"),
        (
            f"answer latency, {latency['n']} dev questions, one process",
            f"p50 {latency['p50'] * 1000:.0f} ms, p95 {latency['p95'] * 1000:.0f} ms",
            "target p95 < 100 ms",
        ),
    ]
    print("| measure | value | note |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
