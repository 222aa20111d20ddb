"""The `dsar` command line: arguments → API calls, outputs, and exit codes (the client is faked here)."""

import gc
import hashlib
import json
import socket
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import grpc
import pytest

from dsar.v1 import dsar_pb2
from dsar_common.settings import Settings
from dsar_service import cli
from dsar_service.client import ServiceError

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
EMAIL = "jeanne.martin@example.org"
NIR = "284127512345678"


def parse(*argv: str) -> Any:
    return cli.build_parser().parse_args(list(argv))


def test_submit_arguments_map_onto_the_submit_request(tmp_path: Path) -> None:
    recipient_file = tmp_path / "recipient.txt"
    recipient_file.write_text(f"# key of the requester\n{RECIPIENT}\n")
    args = parse(
        "submit", "--kind", "access",
        "--email", EMAIL, "--email", "j.martin@example.com",
        "--phone", "06 12 34 56 78", "--nir", NIR,
        "--person-id", "p-1", "--policy-number", "POL-1", "--policy-number", "POL-2",
        "--visitor-id", "v-1", "--candidate-id", "c-1",
        "--first-name", "Jeanne", "--last-name", "Martin", "--birth-date", "1984-12-01",
        "--recipient-file", str(recipient_file), "--request-key", "ticket-42",
        "--system", "policy", "--system", "claims",
    )  # fmt: skip
    request = cli.submit_request_from_args(args)
    assert request == dsar_pb2.SubmitRequest(
        kind=dsar_pb2.REQUEST_KIND_ACCESS,
        subject=dsar_pb2.Subject(
            emails=[EMAIL, "j.martin@example.com"],
            phones=["06 12 34 56 78"],
            nir=NIR,
            person_ids=["p-1"],
            policy_numbers=["POL-1", "POL-2"],
            visitor_ids=["v-1"],
            candidate_ids=["c-1"],
            name=dsar_pb2.PersonName(first_name="Jeanne", last_name="Martin"),
            birth_date="1984-12-01",
        ),
        recipient=RECIPIENT,
        request_key="ticket-42",
        systems=["policy", "claims"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "--kind", "access", "--email", EMAIL, "--request-key", "k"],  # no recipient
        ["submit", "--kind", "access", "--email", EMAIL, "--recipient", RECIPIENT,
         "--recipient-file", "f", "--request-key", "k"],  # two recipients
        ["submit", "--kind", "erasure", "--email", EMAIL, "--recipient", RECIPIENT, "--request-key", "k"],
        ["download", "r-1"],  # no -o
        ["list", "--overdue", "--bogus"],
        ["bench", "--repeat", "0"],
        ["bench", "--repeat", "10"],
        ["bench", "--repeat", "two"],
    ],
)  # fmt: skip
def test_malformed_command_lines_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == cli.EXIT_USAGE


def test_bench_keeps_its_folder_only_when_told(tmp_path: Path) -> None:
    kept = cli.bench_options(parse("bench", "--only", "large", "--keep", str(tmp_path)))
    assert (kept.only, kept.work_dir, kept.keep_work_dir) == ("large", tmp_path, True)
    default = cli.bench_options(parse("bench"))
    assert (default.only, default.work_dir, default.keep_work_dir, default.repeat) == (None, None, False, 3)
    assert cli.bench_options(parse("bench", "--repeat", "1")).repeat == 1
    assert cli.bench_options(parse("bench", "--repeat", "3")).repeat == 3


@pytest.mark.parametrize(("argv", "module", "entry"), [
    (["serve"], "dsar_service.app", "serve"),
    (["connectors", "run"], "connectors.runtime", "run_connectors"),
])  # fmt: skip
async def test_the_long_running_processes_keep_their_code_out_of_full_collections(
    argv: list[str], module: str, entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_when_started: list[int] = []

    async def started(*_: Any) -> None:
        frozen_when_started.append(gc.get_freeze_count())

    monkeypatch.setattr(f"{module}.{entry}", started)
    args = parse(*argv)
    try:
        assert await args.handler(args, Settings()) == cli.EXIT_OK
    finally:
        gc.unfreeze()  # this test process is not one of them
    assert frozen_when_started and frozen_when_started[0] > 10_000  # the modules, classes, functions


def test_settings_come_from_the_state_folder_then_the_flags(tmp_path: Path) -> None:
    (tmp_path / "stack.toml").write_text('server = "127.0.0.1:6001"\ninsecure = false\n')
    settings = cli.load_settings(parse("--state-dir", str(tmp_path), "systems"), environ={})
    assert (settings.server, settings.insecure, settings.state_dir) == ("127.0.0.1:6001", False, tmp_path)
    flagged = cli.load_settings(
        parse("--state-dir", str(tmp_path), "--server", "127.0.0.1:7001", "--insecure", "systems"), environ={}
    )
    assert (flagged.server, flagged.insecure) == ("127.0.0.1:7001", True)


# --- main() with a fake client --------------------------------------------------------------------


class FakeClient:
    """Stands in for DsarClient: canned answers, calls recorded."""

    submitted: list[dsar_pb2.SubmitRequest]
    snapshots: list[dsar_pb2.DataRequest]
    archive: list[dsar_pb2.DownloadArchiveResponse]
    failure: ServiceError | None = None

    @classmethod
    def connect(cls, settings: Settings) -> Self:
        return cls()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def submit(self, request: dsar_pb2.SubmitRequest) -> dsar_pb2.SubmitResponse:
        FakeClient.submitted.append(request)
        created = dsar_pb2.DataRequest(request_id="r-1", request_key=request.request_key, kind=request.kind)
        return dsar_pb2.SubmitResponse(request=created, created=True)

    async def get(self, request_id: str) -> dsar_pb2.DataRequest:
        if self.failure:
            raise self.failure
        return self.snapshots[-1]

    async def watch(self, request_id: str) -> AsyncIterator[dsar_pb2.DataRequest]:
        for snapshot in self.snapshots:
            yield snapshot

    async def download(self, request_id: str) -> AsyncIterator[dsar_pb2.DownloadArchiveResponse]:
        for message in self.archive:
            yield message


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    monkeypatch.setattr(cli, "DsarClient", FakeClient)
    FakeClient.submitted, FakeClient.snapshots, FakeClient.archive, FakeClient.failure = [], [], [], None
    return FakeClient


def run(tmp_path: Path, *argv: str) -> int:
    return cli.main(["--state-dir", str(tmp_path), *argv])


def test_submit_prints_the_request_id_and_nothing_personal(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(tmp_path, "submit", "--kind", "portability", "--email", EMAIL, "--nir", NIR,
               "--recipient", RECIPIENT, "--request-key", "k-1")  # fmt: skip
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK
    assert out == "r-1\n"
    assert EMAIL not in out + err and NIR not in out + err
    assert fake_client.submitted[0].kind == dsar_pb2.REQUEST_KIND_PORTABILITY


def test_submit_json_gives_the_request_and_whether_it_was_created(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(tmp_path, "submit", "--kind", "access", "--email", EMAIL, "--recipient", RECIPIENT,
               "--request-key", "k-1", "--json")  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert code == cli.EXIT_OK
    assert printed["created"] is True
    assert printed["request"]["request_id"] == "r-1"
    assert printed["request"]["kind"] == "REQUEST_KIND_ACCESS"


def test_a_subject_without_identifiers_is_a_usage_error(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(tmp_path, "submit", "--kind", "access", "--recipient", RECIPIENT, "--request-key", "k")
    assert code == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("dsar: name the subject by at least one identifier")
    assert fake_client.submitted == []


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (dsar_pb2.REQUEST_STATE_READY, cli.EXIT_OK),
        (dsar_pb2.REQUEST_STATE_FAILED, cli.EXIT_FAILED),
        (dsar_pb2.REQUEST_STATE_CANCELLED, cli.EXIT_FAILED),
    ],
)
def test_watch_exits_by_how_the_request_ended(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str], final: int, expected: int
) -> None:
    running = dsar_pb2.SystemStatus(system="policy", state=dsar_pb2.SYSTEM_STATE_RUNNING, attempts=1)
    fake_client.snapshots = [
        dsar_pb2.DataRequest(request_id="r-1", state=dsar_pb2.REQUEST_STATE_COLLECTING, systems=[running]),
        dsar_pb2.DataRequest(request_id="r-1", state=final, systems=[running]),  # type: ignore[arg-type]
    ]
    assert run(tmp_path, "watch", "r-1") == expected
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("r-1  COLLECTING")
    assert out[-1].startswith(f"r-1  {dsar_pb2.RequestState.Name(final).removeprefix('REQUEST_STATE_')}")  # type: ignore[arg-type]


def test_download_writes_the_verified_archive(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"age-encryption.org/v1\n..." * 100
    info = dsar_pb2.ArchiveInfo(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    fake_client.archive = [dsar_pb2.DownloadArchiveResponse(info=info), dsar_pb2.DownloadArchiveResponse(chunk=data)]
    target = tmp_path / "out.age"
    assert run(tmp_path, "download", "r-1", "-o", str(target)) == cli.EXIT_OK
    assert target.read_bytes() == data
    assert "(verified)" in capsys.readouterr().out


def test_a_corrupt_download_exits_1_with_one_line(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = dsar_pb2.ArchiveInfo(size_bytes=3, sha256="0" * 64)
    fake_client.archive = [dsar_pb2.DownloadArchiveResponse(info=info), dsar_pb2.DownloadArchiveResponse(chunk=b"abc")]
    assert run(tmp_path, "download", "r-1", "-o", str(tmp_path / "out.age")) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SHA-256 does not match" in err
    assert not (tmp_path / "out.age").exists()


def test_a_refusal_from_the_service_exits_1_with_one_line(
    fake_client: type[FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_client.failure = ServiceError(grpc.StatusCode.NOT_FOUND, "not found: no such request")
    assert run(tmp_path, "status", "r-9") == cli.EXIT_FAILED
    assert capsys.readouterr().err == "dsar: not found: no such request\n"


def test_an_unreachable_service_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert run(tmp_path, "--server", f"127.0.0.1:{port}", "--insecure", "systems") == cli.EXIT_UNAVAILABLE
    assert capsys.readouterr().err == (
        f"dsar: cannot reach the dsar service at 127.0.0.1:{port} (unavailable; is `dsar serve` running?)\n"
    )


# --- the demo, end to end ---------------------------------------------------------------------------


@pytest.mark.integration
def test_the_demo_runs_end_to_end_and_stops_what_it_started(tmp_path: Path) -> None:
    """`dsar demo` on its own embedded stack (its own PostgreSQL too): exit 0, files written, nothing left running."""
    from connectors.testing.population import generate
    from dsar_service.stack import stack_status

    state = tmp_path / "state"
    argv = [sys.executable, "-m", "dsar_service.cli", "--state-dir", str(state), "demo", "--postgres", "embedded"]
    done = subprocess.run([*argv, "--timeout", "240"], capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "manifest.json" in done.stdout and "records (" in done.stdout
    demo = state / "demo"
    archives, zips = sorted(demo.glob("*.age")), sorted(demo.glob("*.zip"))
    assert len(archives) == len(zips) == 1 and (demo / "identity.txt").exists()
    assert zipfile.ZipFile(zips[0]).read("manifest.json")
    subject = generate(15).demo
    for value in (subject.email, subject.nir, subject.first_name, subject.last_name, subject.person_id):
        assert value not in done.stdout + done.stderr
    assert not stack_status(state).any_running
    assert not list(state.glob("run/*.json"))
