"""Histograms the workers keep in the shared store, read back by the front door's /metrics.

Workers run in many processes; Prometheus scrapes one endpoint. Each observation adds to
counters in Redis (one per bucket at or above the value, plus +Inf, sum and count, as
Prometheus histograms are cumulative), and the front door turns them back into histograms.
Names and buckets live here so both sides agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ANSWER_LATENCY = "answer_latency_seconds"  # by platform and outcome
ANSWER_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
SEARCH_LATENCY = "search_seconds"  # by platform: embedding the question, searching, fusing
SEARCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SYNC_DURATION = "sync_seconds"  # by source
SYNC_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
EMBEDDED_CHUNKS = "embedded_chunks"  # by source; with EMBED_SECONDS, the embedding throughput
EMBED_SECONDS = "embed_seconds"
_PREFIX = "hist:"


def observation(
    name: str, labels: Sequence[str], value: float, buckets: Sequence[float]
) -> dict[str, float]:
    """The counter increments that record one observation."""
    base = f"{_PREFIX}{name}:{'|'.join(labels)}"
    adds = {f"{base}:le={bound:g}": 1.0 for bound in buckets if value <= bound}
    return adds | {f"{base}:le=+Inf": 1.0, f"{base}:sum": value, f"{base}:count": 1.0}


def histograms(
    counters: dict[str, float], name: str, buckets: Iterable[float]
) -> dict[tuple[str, ...], tuple[list[tuple[str, float]], float]]:
    """Labels -> (cumulative buckets as (upper bound, count), sum) read back from the counters."""
    found: dict[tuple[str, ...], tuple[list[tuple[str, float]], float]] = {}
    start = f"{_PREFIX}{name}:"
    bounds = [f"{bound:g}" for bound in buckets] + ["+Inf"]
    for key in counters:
        if key.startswith(start) and key.endswith(":count"):
            labels = key[len(start) : -len(":count")]
            base = f"{start}{labels}"
            rows = [(bound, counters.get(f"{base}:le={bound}", 0.0)) for bound in bounds]
            found[tuple(labels.split("|"))] = (rows, counters.get(f"{base}:sum", 0.0))
    return found
