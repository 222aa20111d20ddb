"""No personal data outside the source systems: not in a log line, a Kafka message, nor a row of the service.

The demo subject's recognisable values (e-mail, NIR, phone in both formats, names, birth date,
address, IBANs, the AML analysts' notes) are loaded into the five source systems. Requests that
succeed and requests that do not (refused as malformed, refused as a key reused for other
content, cancelled at once, one whose claims system fails) run through the service and the
connectors, as processes. Then every line they logged, every message on every topic of the
broker (raw key, value and headers, read from the beginning without a group), and every row of
every table of the service's database (bytea raw) are searched for those values: none may
appear. Only the encrypted archive, and the source systems, may hold them.
"""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # tests.support, until pytest's `pythonpath` names the project's root
    sys.path.insert(0, _ROOT)

import grpc  # noqa: E402
import pyrage  # noqa: E402
import pytest  # noqa: E402

from connectors.testing.population import Population, generate  # noqa: E402
from dsar.v1 import dsar_pb2  # noqa: E402
from dsar_service.stack import StackInfo  # noqa: E402
from tests.support.archive import fetch_archive  # noqa: E402
from tests.support.broker import all_messages, running_broker  # noqa: E402
from tests.support.database import connected, dump_tables  # noqa: E402
from tests.support.deployment import Deployment, deployment_settings  # noqa: E402
from tests.support.rpc import access_request, system_status, wait_until_ended  # noqa: E402
from tests.support.servers import database_url, load_sources, running_servers  # noqa: E402

SYSTEMS = ["analytics", "claims", "crm", "policy", "recruitment"]


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(seed=21)


@pytest.fixture(scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory, population: Population) -> AsyncIterator[StackInfo]:
    async with running_servers(tmp_path_factory.mktemp("leak-stack")) as info:
        await load_sources(info, population, SYSTEMS)
        yield info


def recognisable_values(population: Population) -> dict[str, str]:
    """What would identify the demo subject, by a name for each that the report may print."""
    demo = population.demo
    values = {
        "email": demo.email,
        "nir": demo.nir,
        "nir (spaced)": f"{demo.nir[0]} {demo.nir[1:3]} {demo.nir[3:5]} {demo.nir[5:7]} {demo.nir[7:10]} "
        f"{demo.nir[10:13]} {demo.nir[13:]}",
        "phone (E.164)": demo.phone,
        "phone (national)": "0" + demo.phone.removeprefix("+33"),
        "first name": demo.first_name,
        "last name": demo.last_name,
        "birth date": demo.birth_date.isoformat(),
        "address": demo.address_line,
        "person id": demo.person_id,
    }
    for n, note in enumerate(demo.aml_analyst_notes):
        values[f"aml note {n}"] = note
    for table, row in population.subject_rows("policy"):
        if table == "bank_account":
            values[f"iban {row['valid_from']}"] = str(row["iban"])
    return values


def hits(values: dict[str, str], where: str, blob: bytes) -> list[str]:
    lowered = blob.lower()
    return [f"{name} in {where}" for name, value in values.items() if value.lower().encode() in lowered]


async def test_no_personal_data_in_logs_messages_or_the_service_database(
    servers: StackInfo, population: Population, tmp_path: Path
) -> None:
    demo = population.demo
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    # Not by phone: the service finds the population's demo phone (+33 6 39…) not a valid number.
    subject = {"emails": [demo.email], "nir": demo.nir}
    outcomes: dict[str, str] = {}
    async with running_broker(tmp_path / "broker") as broker:
        settings = await deployment_settings(servers, broker, tmp_path, system_timeout_seconds=20.0)
        async with Deployment.started(settings, tmp_path) as deployment:
            await deployment.start_connectors(SYSTEMS)
            stub = deployment.stub

            ok = (await stub.Submit(access_request(recipient, "leak:ok", **subject))).request.request_id
            done = await wait_until_ended(stub, ok, 90, deployment.check_alive)
            assert done.state == dsar_pb2.REQUEST_STATE_READY, done.error
            archive = await fetch_archive(stub, ok, identity)
            assert archive.count("policy") > 0 and archive.count("claims") > 0
            outcomes["succeeded"] = f"{archive.info.size_bytes:,} bytes, {sum(map(len, archive.data.values()))} records"

            for key, request in {
                "malformed": access_request("age1nope", "leak:bad", emails=[demo.email, "not-an-email"],
                                            nir=demo.nir[:-2] + "00", phones=[demo.email]),
                "key reused": access_request(recipient, "leak:ok", emails=[demo.email]),
            }.items():  # fmt: skip
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Submit(request)
                outcomes[key] = refused.value.code().name

            cancelled = (await stub.Submit(access_request(recipient, "leak:cancel", **subject))).request.request_id
            await stub.Cancel(dsar_pb2.CancelRequest(request_id=cancelled))
            outcomes["cancelled"] = dsar_pb2.RequestState.Name(
                (await wait_until_ended(stub, cancelled, 30, deployment.check_alive)).state
            )

            async with connected(database_url(servers.postgres_url, "claims")) as claims_db:
                await claims_db.execute("ALTER TABLE claim RENAME TO claim_away")
                try:
                    failing = (await stub.Submit(access_request(recipient, "leak:fail", **subject))).request.request_id
                    ended = await wait_until_ended(stub, failing, 90, deployment.check_alive)
                finally:
                    await claims_db.execute("ALTER TABLE claim_away RENAME TO claim")
            claims = system_status(ended, "claims")
            assert claims.state == dsar_pb2.SYSTEM_STATE_FAILED, claims
            outcomes["claims failing"] = f"{dsar_pb2.RequestState.Name(ended.state)}, claims: {claims.error!r}"

            logs = {path.name: path.read_bytes() for path in deployment.logs}
        messages = await all_messages(broker.bootstrap)
    tables = await dump_tables(settings.database_url)

    values = recognisable_values(population)
    found: list[str] = []
    for name, text in logs.items():
        found += hits(values, f"log {name}", text)
    for message in messages:
        found += hits(values, f"message {message.topic}/{message.partition}@{message.offset}", message.as_bytes())
    for table, rows in tables.items():
        found += hits(values, f"table {table}", rows)
    topics = sorted({m.topic for m in messages})
    print(
        f"\n[leaks] {len(values)} values searched in {len(logs)} logs ({sum(map(len, logs.values())):,} bytes), "
        f"{len(messages)} messages on {len(topics)} topics ({', '.join(topics)}), "
        f"{len(tables)} tables ({sum(map(len, tables.values())):,} bytes): {len(found)} hit(s)"
        + "".join(f"\n  {k}: {v}" for k, v in outcomes.items())
        + "".join(f"\n  HIT {hit}" for hit in found)
    )
    assert found == []
