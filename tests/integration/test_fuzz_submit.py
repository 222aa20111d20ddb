"""Submit fuzzed: random and malformed SubmitRequests thrown at the running service over gRPC.

Strings of any Unicode, huge lists, unknown kinds, unusable recipients, NIRs with wrong keys,
impossible dates, odd request keys and system names, mixed with plausible values so that some
requests are accepted. The service (a `dsar serve` process; the policy and claims systems
announced by the test) must answer each one with OK, or INVALID_ARGUMENT carrying a BadRequest
that names the fields at fault, or FAILED_PRECONDITION / ALREADY_EXISTS: never INTERNAL or
UNKNOWN. And a refused submission writes nothing: no row in `requests` under its key.
"""

import asyncio
import string
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # tests.support, until pytest's `pythonpath` names the project's root
    sys.path.insert(0, _ROOT)

import grpc  # noqa: E402
import pyrage  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dsar.v1 import dsar_pb2, dsar_pb2_grpc  # noqa: E402
from dsar_service.stack import StackInfo  # noqa: E402
from tests.support.broker import running_broker  # noqa: E402
from tests.support.database import connected  # noqa: E402
from tests.support.deployment import Deployment, deployment_settings  # noqa: E402
from tests.support.played import PlayedConnector  # noqa: E402
from tests.support.rpc import bad_request, wait_for_systems  # noqa: E402
from tests.support.servers import running_servers  # noqa: E402

EXAMPLES = 300
ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS}
RECIPIENTS = [str(pyrage.x25519.Identity.generate().to_public()) for _ in range(2)]
KEY_ALPHABET = string.ascii_letters + string.digits + "._:-"


def nir(sex: int, year: int, month: int, department: str, rest: str, good_key: bool, key_shift: int) -> str:
    """A NIR, with its right control key or a wrong one."""
    body = f"{sex}{year % 100:02d}{month:02d}{department}{rest}"
    digits = body.replace("2A", "19").replace("2B", "18")
    right = 97 - int(digits) % 97 if digits.isdigit() else 0
    return f"{body}{right if good_key else (right + key_shift) % 98:02d}"


anything = st.text(max_size=300)
nirs = st.one_of(
    anything,
    st.builds(
        nir,
        st.sampled_from([1, 2, 3, 7]),
        st.integers(0, 99),
        st.integers(0, 13),
        st.sampled_from(["69", "2A", "2B", "00", "99", "ZZ"]),
        st.from_regex(r"\A\d{6}\Z"),
        st.booleans(),
        st.integers(1, 96),
    ),
    st.from_regex(r"\A[12] ?\d{2} ?\d{2} ?\d{2} ?\d{3} ?\d{3} ?\d{2}\Z"),
)
emails = st.one_of(anything, st.emails().map(str), st.from_regex(r"\A[^@\s]{1,20}@[^@\s]{0,20}\Z"))
phones = st.one_of(anything, st.from_regex(r"\A(\+33|0)[1-9]\d{8}\Z"), st.from_regex(r"\A\+\d{1,15}\Z"))
dates = st.one_of(
    anything,
    st.dates().map(lambda d: d.isoformat()),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}\Z"),
    st.sampled_from(["2024-02-30", "1899-12-31", "2999-01-01", "0000-00-00", "1981-3-14"]),
)
recipients = st.one_of(
    anything,
    st.sampled_from(RECIPIENTS),
    st.text(max_size=80).map(lambda t: "age1" + t),
    st.text(max_size=80).map(lambda t: "ssh-ed25519 " + t),
    st.sampled_from(["", "age1", "ssh-rsa AAAA", RECIPIENTS[0].upper(), RECIPIENTS[0][:-1] + "q"]),
)
request_keys = st.one_of(st.text(alphabet=KEY_ALPHABET, min_size=1, max_size=130), anything)


def lists(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """Mostly short lists, sometimes huge ones."""
    return st.one_of(st.lists(values, max_size=3), st.lists(values, min_size=11, max_size=12),
                     st.integers(500, 3000).map(lambda n: ["x@example.org"] * n))  # fmt: skip


chaos = st.builds(
    dsar_pb2.SubmitRequest,
    kind=st.one_of(st.sampled_from([1, 2]), st.integers(-3, 40)),
    subject=st.builds(
        dsar_pb2.Subject,
        emails=lists(emails),
        phones=lists(phones),
        nir=st.one_of(st.just(""), nirs),
        person_ids=lists(st.one_of(st.uuids().map(str), anything)),
        policy_numbers=lists(st.one_of(st.from_regex(r"\A[A-Z]{2}-\d{4}-\d{6}\Z"), anything)),
        visitor_ids=lists(st.one_of(st.uuids().map(str), anything)),
        candidate_ids=lists(st.one_of(st.from_regex(r"\A[0-9a-f]{24}\Z"), anything)),
        name=st.builds(dsar_pb2.PersonName, first_name=anything, last_name=anything),
        birth_date=st.one_of(st.just(""), dates),
    ),
    recipient=recipients,
    request_key=request_keys,
    systems=st.one_of(
        st.just([]), st.lists(st.sampled_from(["policy", "claims", "crm", "Policy", ""]), max_size=3), lists(anything)
    ),
)


@st.composite
def nearly_valid(draw: st.DrawFn) -> dsar_pb2.SubmitRequest:
    """A valid request, most of the time with one field replaced by something drawn from `chaos`."""
    request = dsar_pb2.SubmitRequest(
        kind=draw(st.sampled_from([dsar_pb2.REQUEST_KIND_ACCESS, dsar_pb2.REQUEST_KIND_PORTABILITY])),
        subject=dsar_pb2.Subject(
            emails=[draw(st.sampled_from(["julie.martin@example.org", "Paul.Durand@Example.com"]))],
            nir=draw(st.sampled_from(["", nir(1, 1981, 3, "69", "383047", True, 0)])),
        ),
        recipient=draw(st.sampled_from(RECIPIENTS)),
        request_key=draw(st.text(alphabet=KEY_ALPHABET, min_size=8, max_size=40)),
        systems=draw(st.sampled_from([[], ["policy"], ["claims", "policy"]])),
    )
    other = draw(chaos)
    replaced = draw(st.sampled_from(["", "kind", "recipient", "request_key", "systems", "subject", *SUBJECT_FIELDS]))
    if replaced in SUBJECT_FIELDS:
        request.subject.ClearField(replaced)  # type: ignore[arg-type]
        value = getattr(other.subject, replaced)
        if replaced == "name":
            request.subject.name.CopyFrom(value)
        elif isinstance(value, str):
            setattr(request.subject, replaced, value)
        else:
            getattr(request.subject, replaced).extend(value)
    elif replaced == "subject":
        request.subject.CopyFrom(other.subject)
    elif replaced == "systems":
        request.systems[:] = other.systems
    elif replaced:
        setattr(request, replaced, getattr(other, replaced))
    return request


SUBJECT_FIELDS = [f.name for f in dsar_pb2.Subject.DESCRIPTOR.fields]
submissions = st.one_of(nearly_valid(), chaos)


@dataclass
class Outcomes:
    """What the service answered, by status, and the keys it accepted and refused."""

    codes: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    wrong: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackInfo]:
    async with running_servers(tmp_path_factory.mktemp("fuzz-stack")) as info:
        yield info


def fuzz(address: str, outcomes: Outcomes) -> None:
    """Run the examples with a blocking channel (hypothesis drives a plain function), in a thread."""
    with grpc.insecure_channel(address) as channel:
        stub = dsar_pb2_grpc.DsarServiceStub(channel)

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(request=submissions)
        def submit(request: dsar_pb2.SubmitRequest) -> None:
            try:
                stub.Submit(request, timeout=30)
            except grpc.RpcError as error:
                code = error.code()
                outcomes.codes[code.name] += 1
                outcomes.refused.add(request.request_key)
                assert code in ALLOWED, f"{code.name}: {error.details()}"
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    detail = bad_request(error)
                    assert detail is not None and detail.field_violations, "INVALID_ARGUMENT without BadRequest"
                return
            outcomes.codes["OK"] += 1
            outcomes.accepted.add(request.request_key)

        submit()


async def test_fuzzed_submissions_are_refused_cleanly_and_write_nothing(servers: StackInfo, tmp_path: Path) -> None:
    outcomes = Outcomes()
    async with running_broker(tmp_path / "broker") as broker:
        config = await deployment_settings(servers, broker, tmp_path)
        async with (
            Deployment.started(config, tmp_path) as deployment,
            PlayedConnector.running(config, "policy"),
            PlayedConnector.running(config, "claims"),
        ):
            await wait_for_systems(deployment.stub, {"policy", "claims"}, 30)
            began = time.monotonic()
            await asyncio.to_thread(fuzz, config.server, outcomes)
            took = time.monotonic() - began
            deployment.check_alive()
    storable = [key for key in outcomes.refused - outcomes.accepted if "\x00" not in key]
    async with connected(config.database_url) as connection:
        written = await connection.fetch("SELECT request_key FROM requests WHERE request_key = ANY($1)", storable)
        accepted = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE request_key = ANY($1)", sorted(outcomes.accepted)
        )
    print(
        f"\n[fuzz] {sum(outcomes.codes.values())} Submits in {took:.1f}s: {dict(outcomes.codes)}; "
        f"{len(outcomes.accepted)} keys accepted ({accepted} rows), {len(storable)} refused keys: "
        f"{len(written)} row(s) written"
    )
    assert [r["request_key"] for r in written] == [], "a refused submission left a request behind"
    assert accepted == len(outcomes.accepted)
