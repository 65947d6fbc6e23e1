"""A process that answers questions runs BLAS on one thread (training, which multiplies whole
matrices, keeps its threads).

A question's matrix products are small (one vector against a few thousand rows), so a second
BLAS thread saves nothing; but OpenBLAS's threads busy-wait after each product, on the cores the
embedding engine's OpenMP threads need for the next question. Measured over 800 dev questions
asked back to back on 2 cores, three runs each: query embedding 52-55 -> 32-38 ms on average,
answer p50 63-68 -> 42-48 ms, p95 91-96 -> 61-78 ms.

The limit is set once and kept: OpenBLAS 0.3.31 ignores a limit set from a second thread after
the first thread restored its own, so a per-question limit would not hold in the web app's
worker threads.
"""

from __future__ import annotations

from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def one_blas_thread() -> None:
    """Limit every BLAS library loaded so far to one thread, for the rest of the process."""
    ThreadpoolController().limit(limits=1, user_api="blas")
