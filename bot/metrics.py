"""Prometheus metrics of the front door, served at /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from workers import jobs
from workers.ingest.state import StateStore
from workers.kv import KeyValue
from workers.worker_metrics import (
    ANSWER_BUCKETS,
    ANSWER_LATENCY,
    EMBED_SECONDS,
    EMBEDDED_CHUNKS,
    SEARCH_BUCKETS,
    SEARCH_LATENCY,
    SYNC_BUCKETS,
    SYNC_DURATION,
    histograms,
)

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "ragbot_http_requests",
    "HTTP requests by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "ragbot_http_request_seconds",
    "Time to answer an HTTP request (Slack sees this as the ack)",
    ["route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUESTIONS = Counter(
    "ragbot_questions",
    "Questions accepted and handed to the workers",
    ["platform", "kind"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "ragbot_duplicate_deliveries",
    "Deliveries ignored because the question was already taken",
    ["platform"],
    registry=REGISTRY,
)
ENQUEUE_LATENCY = Histogram(
    "ragbot_enqueue_seconds",
    "Event received -> placeholder posted and task enqueued",
    ["platform"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
FEEDBACK = Counter(
    "ragbot_feedback", "Feedback button clicks", ["platform", "vote"], registry=REGISTRY
)
IGNORED = Counter(
    "ragbot_ignored_requests",
    "Requests refused or ignored on purpose (other tenants, forged or malformed requests)",
    ["platform", "reason"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "ragbot_front_door_errors",
    "Failures handling a chat event",
    ["platform", "stage"],
    registry=REGISTRY,
)


class WorkerCounters(Collector):
    """What the workers count in Redis (answers by outcome, answer time), at this one endpoint."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    def collect(
        self,
    ) -> Iterator[CounterMetricFamily | SummaryMetricFamily | HistogramMetricFamily]:
        try:
            counters = self.kv.counters()
        except Exception:  # a scrape must not fail because Redis blinked
            return
        answers = CounterMetricFamily(
            "ragbot_answers", "Questions the workers finished, by outcome", labels=["outcome"]
        )
        for name, value in sorted(counters.items()):
            if name.startswith("answers:"):
                answers.add_metric([name.split(":", 1)[1]], value)
        yield answers
        views = CounterMetricFamily(
            "ragbot_answer_views",
            "Conversation answers by whose documents they drew on, and why narrower",
            labels=["scope", "reason"],
        )
        for name, value in sorted(counters.items()):
            if name.startswith("views:") and name.count(":") == 2:
                _, scope, reason = name.split(":")
                views.add_metric([scope, reason], value)
        yield views
        timing = SummaryMetricFamily(
            "ragbot_answer_seconds", "Worker time per answered question (retrieve, write, post)"
        )
        timing.add_metric(
            [],
            count_value=int(counters.get("answer_seconds:count", 0)),
            sum_value=counters.get("answer_seconds:sum", 0.0),
        )
        yield timing
        yield from _histograms(counters)
        for name, help_text in (
            (EMBEDDED_CHUNKS, "Passages embedded by syncs, by source"),
            (EMBED_SECONDS, "Time syncs spent embedding, by source (with the above: throughput)"),
        ):
            family = CounterMetricFamily(f"ragbot_{name}", help_text, labels=["source"])
            for key, value in sorted(counters.items()):
                if key.startswith(f"{name}:"):
                    family.add_metric([key.split(":", 1)[1]], value)
            yield family


def _histograms(counters: dict[str, float]) -> Iterator[HistogramMetricFamily]:
    for name, labels, buckets, help_text in (
        (
            ANSWER_LATENCY,
            ["platform", "outcome"],
            ANSWER_BUCKETS,
            "Worker time per question (retrieve, write, post), by platform and outcome",
        ),
        (
            SEARCH_LATENCY,
            ["platform"],
            SEARCH_BUCKETS,
            "Finding a question's passages (embedding, searches, fusion), by platform",
        ),
        (SYNC_DURATION, ["source"], SYNC_BUCKETS, "Sync duration, by source"),
    ):
        family = HistogramMetricFamily(f"ragbot_{name}", help_text, labels=labels)
        for values, (rows, total) in sorted(histograms(counters, name, buckets).items()):
            if len(values) == len(labels):
                family.add_metric(list(values), rows, total)
        yield family


class SourceFreshness(Collector):
    """When each source last synced successfully (alerts compare it with the sync interval)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ragbot_source_last_success_timestamp_seconds",
            "Unix time of each source's last successful sync",
            labels=["source"],
        )
        try:
            for source in self.state.sources():
                done = self.state.load(source).last_success_at
                if done:
                    family.add_metric([source], datetime.fromisoformat(done).timestamp())
        except Exception:  # a scrape must not fail because Redis blinked
            return
        yield family


class QueueDepth(Collector):
    """Questions, index jobs and embedding batches waiting for a worker (the broker's lists in
    Redis); the embed queue's depth is what an autoscaler may scale embedding pods on."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ragbot_queue_depth", "Tasks waiting for a worker, by queue", labels=["queue"]
        )
        try:
            for queue in (jobs.ANSWER_QUEUE, jobs.INDEX_QUEUE, jobs.EMBED_QUEUE):
                family.add_metric([queue], float(self.client.llen(queue)))
        except Exception:  # a scrape must not fail because Redis blinked
            return
        yield family
