"""Prometheus metrics of the front door, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
ERRORS = Counter(
    "ragbot_front_door_errors",
    "Failures handling a chat event",
    ["platform", "stage"],
    registry=REGISTRY,
)
