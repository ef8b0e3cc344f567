"""Prometheus metrics (prometheus-client), one registry per app, served at ``GET /metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_FRESHNESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class Metrics:
    """The server's metrics; units are seconds and events."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.request_seconds = Histogram("freshrec_request_seconds", "Server-side request latency (s)",
                                         ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        # children bound once: no label lookup (dict + lock) on the hot paths
        self.recommend_seconds = self.request_seconds.labels("recommend")
        self.feedback_seconds = self.request_seconds.labels("feedback")
        self.feedback_to_effect = Histogram(
            "freshrec_feedback_to_effect_seconds",
            "Time from a feedback event being accepted (202) to the serving model reflecting it (s)",
            buckets=_FRESHNESS_BUCKETS, registry=r)
        self.events_learned = Gauge("freshrec_events_learned", "Events applied to the serving model", registry=r)
        self.model_version = Gauge("freshrec_model_version", "Serving model version (events learned)", registry=r)
        self.stream_lag = Gauge("freshrec_stream_lag", "Accepted events not yet learned", registry=r)
        self.feedback_accepted = Counter("freshrec_feedback_accepted", "Feedback events made durable", registry=r)
        self.feedback_rejected = Counter("freshrec_feedback_unavailable", "Feedback answered 503 (Redis down)",
                                         registry=r)
        self.rollbacks = Gauge("freshrec_guard_rollbacks", "Forgetting-guard rollbacks", registry=r)
        self.policy_value = Gauge("freshrec_policy_clicks_per_slate",
                                  "Estimated clicks per slate over the evaluation window (champion on-policy, challenger "
                                  "off-policy)", ["policy"], registry=r)
