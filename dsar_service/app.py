"""The composition root: opens every resource in one place, wires them, runs until stopped."""

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_common.observability import configure_tracing, log_fields
from dsar_common.settings import Settings, SettingsError
from dsar_common.topics import Topics
from dsar_service.api import DsarServicer, GuardInterceptor, map_errors
from dsar_service.api.auth import AccessPolicy, Authorizer
from dsar_service.api.guards import traced
from dsar_service.bus import ServiceBus
from dsar_service.metrics import Metrics, serve_metrics
from dsar_service.model import RequestState
from dsar_service.requests.assembly import Assembler
from dsar_service.requests.catalog import SystemCatalog
from dsar_service.requests.collection import Collector, run_periodically
from dsar_service.requests.service import RequestService
from dsar_service.store import AuditLog, ChangeFeed, RequestStore, SystemRow, open_pool

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
TIMEOUT_SWEEP_SECONDS = 1.0
# A collecting request that nothing touched for this long, and that could move, is moved along
# (a step that failed half-way: discoveries not merged, a round not dispatched, no assembly).
IDLE_REQUEST_SECONDS = 5 * TIMEOUT_SWEEP_SECONDS
# Builds at once in one process; of those, the Assembler streams only a few at a time (large
# archives), so the many small ones of a busy replica do not queue behind each other's round trips.
MAX_CONCURRENT_ASSEMBLIES = 16
RESTART_INITIAL_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
GAUGE_REFRESH_SECONDS = 10.0


@dataclass
class Running:
    """A started service: its bound port, and the service object (for in-process tests)."""

    port: int
    service: RequestService


def check_listen_address(settings: Settings) -> None:
    """Insecure mode exists for local development only: it binds loopback or nothing."""
    if not settings.insecure:
        missing = [
            name
            for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "authz_policy_file")
            if not getattr(settings, name)
        ]
        if missing:
            raise SettingsError(
                "serving needs TLS with client certificates and a policy: set "
                + ", ".join(f"DSAR_{name.upper()}" for name in missing)
                + " (or DSAR_INSECURE=true, for development on loopback only)"
            )
        return
    host = settings.listen.rpartition(":")[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SettingsError(f"insecure mode refuses to bind {host!r}: only a loopback address is allowed")


def bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Listen on `settings.listen`: mutual TLS, or plaintext on loopback in insecure mode."""
    if settings.insecure:
        return int(server.add_insecure_port(settings.listen))
    credentials = grpc.ssl_server_credentials(
        [(Path(settings.tls_key_file).read_bytes(), Path(settings.tls_cert_file).read_bytes())],
        root_certificates=Path(settings.tls_client_ca_file).read_bytes(),
        require_client_auth=True,
    )
    return int(server.add_secure_port(settings.listen, credentials))


def access_policy(settings: Settings) -> AccessPolicy:
    if settings.insecure:
        return AccessPolicy.local_development()
    return AccessPolicy.load(Path(settings.authz_policy_file))


class Assemblies:
    """Runs archive assemblies in the background, a few at a time."""

    def __init__(self, assembler: Assembler) -> None:
        self._assembler = assembler
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_ASSEMBLIES)
        self._tasks: set[asyncio.Task[None]] = set()

    def write_ahead(self, completed: SystemRow) -> None:
        self._assembler.write_ahead(completed)

    def follow(self, request_id: str, system: str, attempt: int, sequence: int) -> None:
        self._assembler.follow(request_id, system, attempt, sequence)

    def schedule(self, request_id: str) -> None:
        # A context of its own: the caller's (the last system's completion, its log fields and
        # span) is not the assembly's.
        task = asyncio.create_task(self._run(request_id), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, request_id: str) -> None:
        with log_fields(request_id=request_id):
            async with self._slots:
                try:
                    await self._assembler.assemble(request_id)
                except Exception:
                    log.exception("assembly crashed request=%s", request_id)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in self._tasks:
            task.cancel()
        self._assembler.drop_parts_ahead()


async def supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a consumer loop for good: when it fails (database or broker away), log, wait, start again.

    The loops commit only what they handled, so a restart re-delivers whatever was in flight.
    """
    delay = RESTART_INITIAL_SECONDS
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await loop()
        except Exception as error:
            log.error("%s loop stopped (%s); restarting in %.1f s", name, type(error).__name__, delay)
        if asyncio.get_running_loop().time() - started > RESTART_MAX_SECONDS:
            delay = RESTART_INITIAL_SECONDS
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESTART_MAX_SECONDS)


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Running]:
    """Start the service (gRPC server, consumers, sweeps); stop it gracefully on exit."""
    check_listen_address(settings)
    topics = Topics(settings.topic_prefix)
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(open_pool(settings.database_url))
        changes = await stack.enter_async_context(ChangeFeed.listening(settings.database_url))
        metrics = Metrics()
        if settings.metrics_listen:
            http, _, metrics_port = serve_metrics(metrics, settings.metrics_listen)
            stack.callback(http.shutdown)
            log.info("metrics on http://%s:%d/metrics", settings.metrics_listen.rpartition(":")[0], metrics_port)
        bus = await stack.enter_async_context(ServiceBus.connect(settings.kafka, topics, metrics))
        store = RequestStore(pool)
        catalog = SystemCatalog(store)
        assemblies = Assemblies(Assembler(store, settings, catalog))
        collector = Collector(
            store,
            bus,
            settings,
            on_collected=assemblies.schedule,
            on_completed_before_others=assemblies.write_ahead,
            on_chunk_stored=assemblies.follow,
            metrics=metrics,
            catalog=catalog,
        )
        service = RequestService(store, collector, changes, AuditLog(pool), settings)

        authorizer = Authorizer(access_policy(settings), insecure=settings.insecure)
        guards = [GuardInterceptor(traced), GuardInterceptor(map_errors), GuardInterceptor(authorizer)]
        server = grpc.aio.server(interceptors=guards)
        dsar_pb2_grpc.add_DsarServiceServicer_to_server(DsarServicer(service), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        service_name = dsar_pb2.DESCRIPTOR.services_by_name["DsarService"].full_name
        reflection.enable_server_reflection((service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        port = bind(server, settings)
        await server.start()
        if settings.health_listen:
            # Kubernetes' grpc probes speak plaintext: health checking alone, on a port of its own.
            health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
            health_server.add_insecure_port(settings.health_listen)
            await health_server.start()
            stack.push_async_callback(health_server.stop, SHUTDOWN_GRACE_SECONDS)
        await health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)

        async def refresh_gauges() -> None:
            counts, overdue = await store.counts_by_state(datetime.now(UTC))
            for state in RequestState:
                metrics.requests.labels(state.value).set(counts.get(state, 0))
            metrics.overdue.set(overdue)

        async def sweep() -> None:
            await collector.expire_attempts()
            await collector.resume_idle_requests(timedelta(seconds=IDLE_REQUEST_SECONDS))
            for request_id in await store.stale_assemblies():
                assemblies.schedule(request_id)

        background = [
            asyncio.create_task(supervise("results", lambda: bus.consume_results(collector.take, collector.settle))),
            asyncio.create_task(supervise("heartbeats", lambda: bus.consume_heartbeats(collector.on_heartbeat))),
            asyncio.create_task(run_periodically(TIMEOUT_SWEEP_SECONDS, sweep), name="sweep"),
            asyncio.create_task(run_periodically(settings.purge_interval_seconds, service.purge), name="purge"),
            asyncio.create_task(run_periodically(GAUGE_REFRESH_SECONDS, refresh_gauges), name="gauges"),
        ]
        await collector.resume_open_requests()
        log.info("serving on %s", settings.listen.rpartition(":")[0] + f":{port}")
        try:
            yield Running(port=port, service=service)
        finally:
            await health_servicer.enter_graceful_shutdown()
            await server.stop(SHUTDOWN_GRACE_SECONDS)
            await assemblies.drain()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)


async def serve(settings: Settings) -> None:
    """Run the service until cancelled (SIGINT/SIGTERM in the CLI)."""
    configure_tracing("dsar-service", settings.trace_export)
    async with running_service(settings):
        await asyncio.Event().wait()
