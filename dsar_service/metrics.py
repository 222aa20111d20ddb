"""Prometheus metrics of the service: what it does, never whom it is about.

Labels are states, systems, topics and reasons, never request ids or identifiers. The registry
is per service instance (tests may run several in one process); `serve_metrics` exposes it over
HTTP at `/metrics` on `metrics_listen`.
"""

from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds a system takes to answer: from its dispatch to its last chunk.
_SYSTEM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Gauge("dsar_requests", "Requests by state.", ["state"], registry=r)
        self.overdue = Gauge("dsar_requests_overdue", "Requests not ready past their due date.", registry=r)
        self.system_seconds = Histogram(
            "dsar_system_duration_seconds",
            "Time from a system's dispatch to its complete answer.",
            ["system"],
            buckets=_SYSTEM_BUCKETS,
            registry=r,
        )
        self.records = Counter("dsar_system_records", "Records received per system.", ["system"], registry=r)
        self.bytes = Counter("dsar_system_bytes", "Sealed bytes received per system.", ["system"], registry=r)
        self.outcomes = Counter(
            "dsar_system_outcomes", "Systems' final states per request.", ["system", "state"], registry=r
        )
        self.retries = Counter(
            "dsar_retries", "Attempts dispatched again, by reason.", ["system", "reason"], registry=r
        )
        self.dead_letters = Counter(
            "dsar_dead_letters", "Messages sent to the dead-letter topic.", ["topic"], registry=r
        )
        self.discovered_conflicts = Counter(
            "dsar_discovered_conflicts",
            "Discovered identifiers not searched because they designate another person, per system and kind.",
            ["system", "kind"],
            registry=r,
        )
        self.consumer_lag = Gauge("dsar_consumer_lag", "Messages not yet consumed, per topic.", ["topic"], registry=r)
        self.assembly_seconds = Histogram(
            "dsar_assembly_duration_seconds", "Time to build an archive.", buckets=_SYSTEM_BUCKETS, registry=r
        )
        self.archive_bytes = Counter("dsar_archive_bytes", "Encrypted archive bytes written.", registry=r)


def serve_metrics(metrics: Metrics, listen: str) -> tuple[WSGIServer, Thread, int]:
    """Expose `/metrics` over HTTP on `listen` (host:port, port 0 for a free one)."""
    host, _, port = listen.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=metrics.registry)
    return server, thread, server.server_port
