"""Logs and traces, the same way in the service and the connectors, and never with personal data.

Logs are JSON lines (or plain text for a terminal) carrying `request_id`, `system` and
`trace_id` from the context, so one request can be followed across processes. Code logs request
ids and counts, never identifiers or records: identifiers are masked (`Identifier.masked`).

Traces follow a request from the gRPC call through Kafka to each connector and back: the W3C
trace context travels in the `traceparent` header of every command and result message. Spans go
to an OpenTelemetry exporter chosen by `trace_export`: "" (none), "console" (stderr), or a file
path (one JSON span per line).
"""

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_NO_FIELDS: Mapping[str, str] = MappingProxyType({})
_FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("dsar_log_fields", default=_NO_FIELDS)
_PROPAGATOR = TraceContextTextMapPropagator()
Headers = Sequence[tuple[str, bytes]]


@contextlib.contextmanager
def log_fields(**fields: str) -> Iterator[None]:
    """Add fields (request_id, system, …) to every log line written inside the block."""
    token = _FIELDS.set({**_FIELDS.get(), **fields})
    try:
        yield
    finally:
        _FIELDS.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the context's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_FIELDS.get(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True, stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _span_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def configure_tracing(service_name: str, export: str) -> None:
    """Send spans to `export` ("" for nowhere, "console", or a file path)."""
    if not export:
        return
    out: IO[str] = sys.stderr if export == "console" else open(export, "a", buffering=1)  # noqa: SIM115
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=_span_line)))
    trace.set_tracer_provider(provider)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context, as Kafka message headers."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def context_from_headers(headers: Headers | None) -> otel_context.Context:
    """The trace context a message carried (an empty one if none)."""
    carrier = {key: value.decode(errors="replace") for key, value in headers or ()}
    return _PROPAGATOR.extract(carrier)


def context_from_traceparent(traceparent: str) -> otel_context.Context:
    return _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})


def current_traceparent() -> str:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")
