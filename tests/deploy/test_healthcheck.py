"""deploy/healthcheck.py, the image's health probe, against a real gRPC health service on loopback."""

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "healthcheck.py"
API = "dsar.v1.DsarService"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HealthServer:
    def __init__(self, server: grpc.aio.Server, servicer: health.aio.HealthServicer, port: int) -> None:
        self.server, self.servicer, self.address = server, servicer, f"127.0.0.1:{port}"


@pytest.fixture
async def health_server() -> AsyncIterator[HealthServer]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set(API, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield HealthServer(server, servicer, port)
    finally:
        await server.stop(None)


async def probe(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_serving_server_is_healthy(health_server: HealthServer) -> None:
    status, output = await probe("--address", health_server.address)
    assert status == 0, output
    assert "SERVING" in output
    status, output = await probe("--address", health_server.address, "--service", API)
    assert status == 0, output


async def test_a_server_shutting_down_is_unhealthy(health_server: HealthServer) -> None:
    await health_server.servicer.enter_graceful_shutdown()
    status, output = await probe("--address", health_server.address, "--service", API)
    assert status == 1
    assert "NOT_SERVING" in output


async def test_an_unknown_service_is_unhealthy(health_server: HealthServer) -> None:
    status, output = await probe("--address", health_server.address, "--service", "dsar.v1.Nope")
    assert status == 1
    assert "NOT_FOUND" in output


async def test_nothing_listening_is_unhealthy(health_server: HealthServer) -> None:
    address = health_server.address
    await health_server.server.stop(None)
    status, output = await probe("--address", address, "--timeout", "1")
    assert status == 1
    assert "did not answer" in output


async def test_unreadable_tls_material_is_a_usage_error(tmp_path: Path) -> None:
    status, output = await probe("--address", "127.0.0.1:1", "--ca", str(tmp_path / "missing.pem"))
    assert status == 2
    assert "cannot read TLS material" in output


def test_the_address_comes_from_the_settings_and_wildcards_are_asked_on_loopback() -> None:
    probe_address = load_script().probe_address
    assert probe_address({}) == "127.0.0.1:50051"
    assert probe_address({"DSAR_LISTEN": "127.0.0.1:6000"}) == "127.0.0.1:6000"
    assert probe_address({"DSAR_LISTEN": "0.0.0.0:50051", "DSAR_HEALTH_LISTEN": "0.0.0.0:50052"}) == "127.0.0.1:50052"
    assert probe_address({"DSAR_LISTEN": "[::]:50051"}) == "[::1]:50051"
