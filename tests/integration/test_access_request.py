"""One access request end to end: gRPC in, Kafka across, the policy store read, an age archive out.

The service and the connectors run in this process against the session's real servers (Tansu,
PostgreSQL); the archive is decrypted with the standard `age` command-line tool, and its records
are compared with what the population generator put in the store for the demo subject.
"""

import asyncio
import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import asyncpg
import grpc
import pytest
from pymongo import AsyncMongoClient

from connectors.runtime import run_connectors
from connectors.testing.population import Population, PopulationSizes, generate, load_population
from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_common.settings import Settings
from dsar_service.app import running_service

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age CLI is installed by scripts/bootstrap")


@pytest.fixture(scope="module")
async def population(settings: Settings, source_databases: Mapping[str, str]) -> Population:
    population = generate(seed=11, sizes=PopulationSizes(households=8))
    mongo = AsyncMongoClient(settings.source_mongodb_url)
    try:
        await load_population(
            population,
            {s: f"{settings.source_postgres_url}/{source_databases[s]}" for s in ("policy", "claims")},
            {s: mongo[source_databases[s]] for s in ("crm", "recruitment", "analytics")},
        )
    finally:
        await mongo.close()
    return population


@pytest.fixture(scope="module")
async def service_port(
    settings: Settings, source_databases: Mapping[str, str], population: Population
) -> AsyncIterator[int]:
    """The service and the policy connector, running in this process until the module's tests end."""
    service_settings = settings.with_values(listen="127.0.0.1:0", system_timeout_seconds=20.0)
    stop = asyncio.Event()
    connectors = asyncio.create_task(
        run_connectors(settings, ["policy"], databases=source_databases, stop=stop, handle_signals=False)
    )
    async with running_service(service_settings) as running:
        yield running.port
    stop.set()
    await asyncio.wait_for(connectors, 30)


@pytest.fixture
async def stub(service_port: int) -> AsyncIterator[dsar_pb2_grpc.DsarServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service_port}") as channel:
        stub = dsar_pb2_grpc.DsarServiceStub(channel)
        await _until_systems_seen(stub, {"policy"})
        yield stub


async def _until_systems_seen(stub: dsar_pb2_grpc.DsarServiceStub, names: set[str]) -> None:
    async with asyncio.timeout(30):
        while True:
            seen = {s.name for s in (await stub.ListSystems(dsar_pb2.ListSystemsRequest())).systems if s.alive}
            if names <= seen:
                return
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("age") / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return path, recipient.stdout.strip()


def submit_request(population: Population, recipient: str, key: str, **subject: object) -> dsar_pb2.SubmitRequest:
    return dsar_pb2.SubmitRequest(
        kind=dsar_pb2.REQUEST_KIND_ACCESS,
        subject=dsar_pb2.Subject(**subject),  # type: ignore[arg-type]
        recipient=recipient,
        request_key=key,
        systems=["policy"],
    )


async def _watch_to_end(stub: dsar_pb2_grpc.DsarServiceStub, request_id: str) -> list[dsar_pb2.DataRequest]:
    seen = []
    async with asyncio.timeout(60):
        async for event in stub.Watch(dsar_pb2.WatchRequest(request_id=request_id)):
            seen.append(event.request)
    return seen


async def _download(stub: dsar_pb2_grpc.DsarServiceStub, request_id: str) -> tuple[dsar_pb2.ArchiveInfo, bytes]:
    info, body = None, bytearray()
    async for part in stub.DownloadArchive(dsar_pb2.DownloadArchiveRequest(request_id=request_id)):
        if part.HasField("info"):
            info = part.info
        else:
            body += part.chunk
    assert info is not None
    return info, bytes(body)


def decrypt_with_age_cli(archive: Path, identity: Path) -> bytes:
    """The standard age tool, not the project's code, opens the archive."""
    return subprocess.run(["age", "-d", "-i", str(identity), str(archive)], check=True, capture_output=True).stdout


async def test_an_access_request_ends_in_an_archive_that_age_opens(
    stub: dsar_pb2_grpc.DsarServiceStub, population: Population, identity: tuple[Path, str], tmp_path: Path
) -> None:
    identity_file, recipient = identity
    demo = population.demo
    submitted = await stub.Submit(submit_request(population, recipient, "it:access-1", emails=[demo.email]))
    request_id = submitted.request.request_id
    assert submitted.created and submitted.request.state == dsar_pb2.REQUEST_STATE_COLLECTING

    events = await _watch_to_end(stub, request_id)
    final = events[-1]
    assert final.state == dsar_pb2.REQUEST_STATE_READY, final.error
    assert [s.state for s in final.systems] == [dsar_pb2.SYSTEM_STATE_COMPLETED]
    assert final.systems[0].attempts == 1 and final.systems[0].records > 0

    info, encrypted = await _download(stub, request_id)
    assert info.size_bytes == len(encrypted) == final.archive.size_bytes
    assert info.sha256 == hashlib.sha256(encrypted).hexdigest()

    archive_file = tmp_path / "archive.age"
    archive_file.write_bytes(encrypted)
    plain = await asyncio.to_thread(decrypt_with_age_cli, archive_file, identity_file)
    files = zipfile.ZipFile(io.BytesIO(plain))
    manifest = json.loads(files.read("manifest.json"))
    data = {n: json.loads(files.read(n)) for n in files.namelist() if n.startswith("data/") and n.endswith(".json")}

    insured = data["data/policy/insured_person.json"]
    assert [row["person_id"] for row in insured] == [demo.person_id]
    expected = demo.expected_counts["policy"]
    for table in ("bank_account", "premium_payment", "dunning_event", "file_access_log"):
        assert len(data.get(f"data/policy/{table}.json", [])) == expected[table], table
    for entry in manifest["files"]:
        assert hashlib.sha256(files.read(entry["path"])).hexdigest() == entry["sha256"]
    assert manifest["systems"]["policy"]["status"] == "completed"
    assert {"kind": "email", "source": "request"}.items() <= manifest["identifiers"][0].items()

    everything = plain.decode("utf-8", errors="replace")
    assert demo.spouse_person_id not in everything
    for secret in (*demo.aml_analyst_notes, *demo.accessor_ids):
        assert secret not in everything
    assert "aml" not in " ".join(files.namelist())
    assert manifest["redactions"], "the other members of his policy are listed as removed"


async def test_the_same_key_and_content_returns_the_same_request(
    stub: dsar_pb2_grpc.DsarServiceStub, population: Population, identity: tuple[Path, str]
) -> None:
    _, recipient = identity
    first = await stub.Submit(submit_request(population, recipient, "it:idem", nir=population.demo.nir))
    again = await stub.Submit(submit_request(population, recipient, "it:idem", nir=population.demo.nir))
    assert first.created and not again.created
    assert again.request.request_id == first.request.request_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Submit(submit_request(population, recipient, "it:idem", emails=[population.demo.email]))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await _watch_to_end(stub, first.request.request_id)


async def test_bad_input_is_refused_with_every_field_and_nothing_written(
    stub: dsar_pb2_grpc.DsarServiceStub, settings: Settings
) -> None:
    from google.rpc import error_details_pb2, status_pb2

    request = dsar_pb2.SubmitRequest(
        kind=dsar_pb2.REQUEST_KIND_ACCESS,
        subject=dsar_pb2.Subject(nir="185057800604899", emails=["nope"]),
        recipient="age1notakey",
        request_key="it:bad",
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Submit(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = next(
        status_pb2.Status.FromString(value)
        for key, value in refused.value.trailing_metadata() or ()
        if key == "grpc-status-details-bin"
    )
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    assert {v.field for v in detail.field_violations} == {"subject.nir", "subject.emails[0]", "recipient"}
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM requests WHERE request_key = 'it:bad'") == 0
    finally:
        await conn.close()


async def test_health_and_reflection_answer(service_port: int) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{service_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service="dsar.v1.DsarService"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        services = set()
        async for reply in reflect.ServerReflectionInfo(iter([ask])):
            services |= {s.name for s in reply.list_services_response.service}
        assert {"dsar.v1.DsarService", "grpc.health.v1.Health"} <= services
