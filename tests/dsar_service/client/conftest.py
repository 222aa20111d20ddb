"""The `served` fixture: a FakeDsarService on a real grpc.aio server, on a free loopback port."""

from collections.abc import AsyncIterator

import grpc
import pytest
from fake_dsar_service import FakeDsarService, Served

from dsar.v1 import dsar_pb2_grpc
from dsar_common.settings import Settings


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    service = FakeDsarService()
    server = grpc.aio.server()
    dsar_pb2_grpc.add_DsarServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield Served(service, Settings(server=f"127.0.0.1:{port}", insecure=True))
    finally:
        await server.stop(grace=None)
