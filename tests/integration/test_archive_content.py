"""The answer itself: access and portability archives of the demo subject, checked as a reader would.

The service and every installed connector (entry points: at least `policy`) run in this process
against the session's real servers, on source databases of this module's own (so the population
loaded here collides with no other module's). Each archive must pass `dsar archive verify` (the
function, and once the command in a subprocess), say what art. 15 requires in index.html, list
the removals of the spouse's data, hold no trace of anti-money-laundering data, and, for
portability, hold only what art. 20 covers.
"""

import asyncio
import io
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest
from pymongo import AsyncMongoClient

from connectors.runtime import run_connectors
from connectors.runtime.registry import available, load_connectors
from connectors.testing.population import Population, PopulationSizes, generate, load_population
from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_common.settings import Settings
from dsar_service.app import running_service
from dsar_service.archive import verify_archive, verify_zip

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age CLI is installed by scripts/bootstrap")

POSTGRES = ("policy", "claims")
MONGODB = ("crm", "recruitment", "analytics")
SYSTEMS = available()
AML_WORDS = ("aml", "money laundering", "money-laundering", "blanchiment", "l561", "sanction", "pep", "screening")


@dataclass(frozen=True)
class Answer:
    """A downloaded archive: the encrypted file, its ZIP, and how long assembly took."""

    path: Path
    zip: zipfile.ZipFile
    plain: bytes
    assembly_seconds: float

    def json(self, name: str) -> object:
        return json.loads(self.zip.read(name))

    @property
    def manifest(self) -> dict[str, object]:
        manifest = self.json("manifest.json")
        assert isinstance(manifest, dict)
        return manifest

    @property
    def index(self) -> str:
        return self.zip.read("index.html").decode()


@pytest.fixture(scope="module")
async def databases(settings: Settings, source_databases: Mapping[str, str]) -> AsyncIterator[dict[str, str]]:
    """Source databases of this module only, dropped after it."""
    tag = secrets.token_hex(3)
    names = {system: f"{system}_content_{tag}" for system in (*POSTGRES, *MONGODB)}
    admin = await asyncpg.connect(f"{settings.source_postgres_url}/postgres")
    try:
        for system in POSTGRES:
            await admin.execute(f'CREATE DATABASE "{names[system]}"')
    finally:
        await admin.close()
    yield names
    admin = await asyncpg.connect(f"{settings.source_postgres_url}/postgres")
    try:
        for system in POSTGRES:
            await admin.execute(f'DROP DATABASE IF EXISTS "{names[system]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def population(settings: Settings, databases: Mapping[str, str]) -> Population:
    population = generate(seed=23, sizes=PopulationSizes(households=6))
    mongo = AsyncMongoClient(settings.source_mongodb_url)
    try:
        await load_population(
            population,
            {s: f"{settings.source_postgres_url}/{databases[s]}" for s in POSTGRES},
            {s: mongo[databases[s]] for s in MONGODB},
        )
    finally:
        await mongo.close()
    return population


@pytest.fixture(scope="module")
async def stub(
    settings: Settings, databases: Mapping[str, str], population: Population
) -> AsyncIterator[dsar_pb2_grpc.DsarServiceStub]:
    """The service and every installed connector, in this process until the module's tests end."""
    service_settings = settings.with_values(listen="127.0.0.1:0", system_timeout_seconds=30.0)
    stop = asyncio.Event()
    connectors = asyncio.create_task(
        run_connectors(settings, SYSTEMS, databases=databases, stop=stop, handle_signals=False)
    )
    async with (
        running_service(service_settings) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = dsar_pb2_grpc.DsarServiceStub(channel)
        await _until_cataloged(stub, set(SYSTEMS))
        yield stub
    stop.set()
    await asyncio.wait_for(connectors, 30)


async def _until_cataloged(stub: dsar_pb2_grpc.DsarServiceStub, names: set[str]) -> None:
    async with asyncio.timeout(30):
        while True:
            systems = (await stub.ListSystems(dsar_pb2.ListSystemsRequest())).systems
            if names <= {s.name for s in systems if s.alive}:
                return
            await asyncio.sleep(0.2)


def encrypt(path: Path, plaintext: bytes, recipient: str) -> None:
    """The age CLI encrypts `plaintext` to `recipient` into `path`."""
    subprocess.run(["age", "-r", recipient, "-o", str(path)], input=plaintext, check=True)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("age") / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return path, recipient.stdout.strip()


async def _answer(
    stub: dsar_pb2_grpc.DsarServiceStub,
    population: Population,
    recipient: str,
    kind: "dsar_pb2.RequestKind.ValueType",
    folder: Path,
) -> Answer:
    demo = population.demo
    request = dsar_pb2.SubmitRequest(
        kind=kind,
        subject=dsar_pb2.Subject(emails=[demo.email], nir=demo.nir),
        recipient=recipient,
        request_key=f"content:{kind}:{secrets.token_hex(4)}",
        systems=SYSTEMS,
    )
    request_id = (await stub.Submit(request)).request.request_id
    last: dsar_pb2.DataRequest | None = None
    assembling_since: float | None = None
    async with asyncio.timeout(120):
        async for event in stub.Watch(dsar_pb2.WatchRequest(request_id=request_id)):
            if event.request.state == dsar_pb2.REQUEST_STATE_ASSEMBLING and assembling_since is None:
                assembling_since = time.monotonic()
            last = event.request
    assembly = time.monotonic() - (assembling_since or time.monotonic())
    assert last is not None and last.state == dsar_pb2.REQUEST_STATE_READY, last.error if last else "no event"
    body = bytearray()
    async for part in stub.DownloadArchive(dsar_pb2.DownloadArchiveRequest(request_id=request_id)):
        if not part.HasField("info"):
            body += part.chunk
    path = folder / f"{request_id}.age"
    path.write_bytes(bytes(body))
    plain = await asyncio.to_thread(
        lambda: (
            subprocess.run(
                ["age", "-d", "-i", str(folder.parent / "identity.txt"), str(path)], check=True, capture_output=True
            ).stdout
        )
    )
    return Answer(path, zipfile.ZipFile(io.BytesIO(plain)), plain, assembly)


@pytest.fixture(scope="module")
async def access(stub: dsar_pb2_grpc.DsarServiceStub, population: Population, identity: tuple[Path, str]) -> Answer:
    folder = identity[0].parent / "access"
    folder.mkdir()
    return await _answer(stub, population, identity[1], dsar_pb2.REQUEST_KIND_ACCESS, folder)


@pytest.fixture(scope="module")
async def portability(
    stub: dsar_pb2_grpc.DsarServiceStub, population: Population, identity: tuple[Path, str]
) -> Answer:
    folder = identity[0].parent / "portability"
    folder.mkdir()
    return await _answer(stub, population, identity[1], dsar_pb2.REQUEST_KIND_PORTABILITY, folder)


def _report_figures(name: str, answer: Answer) -> None:
    logging.getLogger(__name__).warning(
        "%s archive: %d bytes encrypted, %d bytes of ZIP, %d files, assembly %.2f s",
        name, answer.path.stat().st_size, len(answer.plain), len(answer.zip.namelist()), answer.assembly_seconds,
    )  # fmt: skip


async def test_both_archives_verify(access: Answer, portability: Answer, identity: tuple[Path, str]) -> None:
    for name, answer in (("access", access), ("portability", portability)):
        report = await asyncio.to_thread(verify_archive, answer.path, identity[0])
        assert report.ok, report.problems
        assert report.data_files > 0 and report.records > 0
        assert verify_zip(answer.plain).ok
        _report_figures(name, answer)


async def test_the_command_line_verifies_and_refuses_a_tampered_archive(
    access: Answer, identity: tuple[Path, str], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "dsar_service.cli", "archive", "verify", str(access.path)]
    command += ["--identity", str(identity[0])]
    env = {**os.environ, "DSAR_STATE_DIR": str(tmp_path)}
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "OK: every hash matches" in done.stdout

    # The same archive with one data file changed, re-encrypted to the same key: hashes betray it.
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as out:
        for info in access.zip.infolist():
            data = access.zip.read(info.filename)
            if info.filename == "data/policy/insured_person.json":
                data = data.replace(b'"', b'"', 1) + b" "
            out.writestr(info.filename, data)
    bad = tmp_path / "tampered.age"
    await asyncio.to_thread(encrypt, bad, tampered.getvalue(), identity[1])
    command[command.index(str(access.path))] = str(bad)
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert "data/policy/insured_person.json: SHA-256 differs" in done.stdout


def test_every_installed_system_is_accounted_for(access: Answer) -> None:
    systems = access.manifest["systems"]
    assert isinstance(systems, dict)
    assert set(systems) == set(SYSTEMS)
    assert systems["policy"]["status"] == "completed"
    for system in SYSTEMS:
        assert f"<h3>{system} " in access.index


def test_the_spouses_data_is_removed_and_each_removal_listed(access: Answer, population: Population) -> None:
    redactions = access.manifest["redactions"]
    assert isinstance(redactions, list)
    spouse_links = [r for r in redactions if r["dataset"] == "policy_member" and "person_id" in r["fields_removed"]]
    assert spouse_links, "the spouse's and children's links are listed as removed"
    assert population.demo.spouse_person_id not in access.plain.decode("utf-8", "replace")
    assert "Other people" in access.index and "policy_member" in access.index
    for redaction in spouse_links:
        assert redaction["record_key"] in access.index


@pytest.mark.parametrize("kind", ["access", "portability"])
def test_no_trace_of_anti_money_laundering(
    kind: str, access: Answer, portability: Answer, population: Population
) -> None:
    answer = access if kind == "access" else portability
    names = " ".join(answer.zip.namelist()).lower()
    assert "aml" not in names and "screening" not in names
    for name in answer.zip.namelist():
        text = answer.zip.read(name).decode("utf-8", "replace")
        for secret in population.demo.aml_analyst_notes:
            assert secret not in text, name
        if name in ("index.html", "manifest.json", "processing.json") or name.startswith("schemas/"):
            lowered = text.lower()
            for word in ("money laundering", "money-laundering", "blanchiment", "l561", "anti-money"):
                assert word not in lowered, (name, word)
            assert " aml" not in lowered and '"aml' not in lowered and "aml_" not in lowered, name


def test_a_code_is_decoded_next_to_its_raw_value(access: Answer) -> None:
    csv_text = access.zip.read("data/policy/dunning_event.csv").decode()
    header = csv_text.splitlines()[0].split(",")
    assert header.index("step_label") == header.index("step") + 1
    events = access.json("data/policy/dunning_event.json")
    assert isinstance(events, list) and events
    words = {"reminder": "Reminder", "formal_notice": "Formal notice (mise en demeure)"}
    for event in events:
        if event["step"] in words:
            assert event["step_label"] == words[event["step"]]
    schema = access.json("schemas/policy/dunning_event.schema.json")
    assert isinstance(schema, dict)
    automated = schema["items"]["properties"]["automated"]
    assert automated["x-provenance"] == "derived" and automated["x-activity"] == "policy_management"


def test_index_tells_the_subject_what_article_15_requires(access: Answer) -> None:
    page = access.index
    for must in (
        "dpo@henner.com",
        "14 Boulevard du Général Leclerc",
        "CNIL",
        "3 Place de Fontenoy",
        "Automated non-payment procedure",
        "Standard Contractual Clauses",
        "Answer due by",
        "Consultations of your file",
    ):
        assert must in page, must
    assert "<script" not in page.lower() and "src=" not in page and "http://" not in page
    log = access.json("data/policy/file_access_log.json")
    assert isinstance(log, list) and log
    assert set(log[0]) >= {"accessed_at", "purpose"} and "accessor_id" not in log[0]


def test_portability_holds_only_what_article_20_covers(portability: Answer) -> None:
    names = portability.zip.namelist()
    assert not [n for n in names if "file_access_log" in n]
    assert not [n for n in names if "fraud_alert" in n]
    for name in (n for n in names if n.startswith("schemas/") and n != "schemas/manifest.schema.json"):
        schema = json.loads(portability.zip.read(name))
        for field, described in schema["items"]["properties"].items():
            assert described.get("x-provenance") != "derived", (name, field)
    insured = portability.json("data/policy/insured_person.json")
    assert isinstance(insured, list) and insured
    assert "person_id" not in insured[0] and "email" in insured[0]
    assert "What portability covers" in portability.index
    if "recruitment" in SYSTEMS:  # legitimate interest only: art. 20 does not cover it
        assert not [n for n in names if n.startswith("data/recruitment/")]
        assert "not covered by the right to portability" in portability.index
    assert portability.manifest["kind"] == "portability"


def test_declared_activities_of_installed_connectors_are_in_the_archive_register(access: Answer) -> None:
    processing = access.json("processing.json")
    assert isinstance(processing, dict)
    exported = {
        json.loads(access.zip.read(name))["x-activity"]
        for name in access.zip.namelist()
        if name.startswith("schemas/") and name != "schemas/manifest.schema.json"
    }
    assert exported <= set(processing["activities"])
    assert {c.name for c in load_connectors(SYSTEMS)} == set(SYSTEMS)
