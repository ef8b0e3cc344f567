"""Prometheus metrics (prometheus-client), one registry per app, served at ``GET /metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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
        self.node_counters = NodeCounters()
        r.register(self.node_counters)


class NodeCounters:
    """Counters the engine keeps itself, exported as they are at scrape time (``/metrics``
    sets ``data`` from the node just before): ``freshrec_dead_letters_total`` (stream entries set aside: dead-lettered by the
    learner, skipped by a replica), ``freshrec_role_restarts_total{role}`` (restarts after a
    failure), ``freshrec_role_up{role}`` (1 while the role runs) and ``freshrec_ready`` (1
    when ``/health/ready`` last answered 200)."""

    def __init__(self) -> None:
        self.data: dict = {}  # {"dead_letters": int, "roles": {name: status}, "ready": 0 | 1}

    def describe(self):
        return []  # nothing to collect before the node exists

    def collect(self):
        data = self.data
        yield CounterMetricFamily("freshrec_dead_letters", "Stream entries set aside (not decodable, refused "
                                  "or not applicable)", value=data.get("dead_letters", 0))
        restarts = CounterMetricFamily("freshrec_role_restarts", "Restarts of a role after a failure",
                                       labels=["role"])
        up = GaugeMetricFamily("freshrec_role_up", "1 while the role runs (0: paused by an outage, restarting, "
                               "failed)", labels=["role"])
        for name, status in data.get("roles", {}).items():
            restarts.add_metric([name], status["restarts"])
            up.add_metric([name], 1.0 if status["state"] == "running" else 0.0)
        yield restarts
        yield up
        if "ready" in data:
            yield GaugeMetricFamily("freshrec_ready", "1 when /health/ready last answered 200", value=data["ready"])
