"""A process that answers questions runs BLAS on one thread.

A question's matrix products are small (one vector against a few thousand rows), so a second
BLAS thread saves nothing; but OpenBLAS's threads busy-wait after each product, on the cores the
embedding engine's OpenMP threads need for the next question. Measured on 2 cores with
`benchmarks/bench_core.py` (3,255 dev questions back to back): answer p50 68 -> 45-47 ms, p95
92-93 -> 56-58 ms; the query embedding 52-55 -> 32-38 ms on average.

The limit is set once, when the answer pipeline is built, and kept: OpenBLAS 0.3.31 ignores a
limit set from a second thread after the first thread restored its own, so a per-question limit
would not hold in the web app's worker threads. Training, which multiplies whole matrices and
never builds the pipeline, keeps its threads (338 s with the limit, 293-297 s without).
"""

from __future__ import annotations

from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def one_blas_thread() -> None:
    """Limit every BLAS library loaded so far to one thread, for the rest of the process."""
    ThreadpoolController().limit(limits=1, user_api="blas")
