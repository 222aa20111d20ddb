"""DsarClient over a real gRPC channel to a fake service: payloads go through, errors come back translated."""

import socket

import grpc
import pytest
from fake_dsar_service import Served

from dsar.v1 import dsar_pb2
from dsar_common.settings import Settings
from dsar_service.client import DsarClient, ServiceError, ServiceUnavailable


async def test_submit_sends_the_request_unchanged(served: Served) -> None:
    request = dsar_pb2.SubmitRequest(
        kind=dsar_pb2.REQUEST_KIND_ACCESS,
        subject=dsar_pb2.Subject(emails=["a@example.org"], nir="184127512345678"),
        recipient="age1xyz",
        request_key="k-1",
        systems=["policy"],
    )
    async with DsarClient.connect(served.settings) as client:
        response = await client.submit(request)
    assert served.service.submitted == [request]
    assert response.created
    assert response.request.request_id == "req-1"


async def test_a_status_from_the_service_becomes_a_service_error(served: Served) -> None:
    async with DsarClient.connect(served.settings) as client:
        with pytest.raises(ServiceError) as caught:
            await client.get("req-unknown")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.message == "not found: no such request"


async def test_refusal_details_are_kept_on_one_line(served: Served) -> None:
    served.service.fail = (grpc.StatusCode.INVALID_ARGUMENT, "invalid request: subject.nir\nmore")
    async with DsarClient.connect(served.settings) as client:
        with pytest.raises(ServiceError) as caught:
            await client.list_systems()
    assert caught.value.message == "invalid argument: invalid request: subject.nir"


async def test_an_unreachable_service_is_named_with_its_address() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(server=f"127.0.0.1:{port}", insecure=True)
    async with DsarClient.connect(settings, timeout=5) as client:
        with pytest.raises(ServiceUnavailable, match=f"cannot reach the dsar service at 127.0.0.1:{port}"):
            await client.list_systems()


async def test_list_follows_pages_and_sends_filters(served: Served) -> None:
    served.service.pages = [
        [dsar_pb2.DataRequest(request_id="r3"), dsar_pb2.DataRequest(request_id="r2")],
        [dsar_pb2.DataRequest(request_id="r1")],
    ]
    async with DsarClient.connect(served.settings) as client:
        found = [r.request_id async for r in client.list_requests([dsar_pb2.REQUEST_STATE_READY], True)]
    assert found == ["r3", "r2", "r1"]
    assert [q.page_token for q in served.service.list_queries] == ["", "1"]
    for query in served.service.list_queries:
        assert list(query.states) == [dsar_pb2.REQUEST_STATE_READY]
        assert query.overdue_only


async def test_cancel_retry_and_extend_send_their_arguments(served: Served) -> None:
    async with DsarClient.connect(served.settings) as client:
        cancelled = await client.cancel("r-1")
        await client.retry_system("r-1", "crm")
        extended = await client.extend_deadline("r-1", 2, "volume of data")
    assert cancelled.state == dsar_pb2.REQUEST_STATE_CANCELLED
    assert extended.extension_reason == "volume of data"
    assert served.service.changes == [
        dsar_pb2.CancelRequest(request_id="r-1"),
        dsar_pb2.RetrySystemRequest(request_id="r-1", system="crm"),
        dsar_pb2.ExtendDeadlineRequest(request_id="r-1", months=2, reason="volume of data"),
    ]
