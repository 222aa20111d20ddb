"""`dsar`: the command line of the service, its connectors, its embedded stack and its API.

    dsar stack up | down | status          the embedded Kafka, MongoDB and PostgreSQL, in the state folder
    dsar serve                             the gRPC service and its consumers, until stopped
    dsar connectors run [--system NAME]…   the connectors installed (entry points), until stopped
    dsar submit --kind … --email … --recipient … --request-key …   register a request, print its id
    dsar status ID | list | watch ID | download ID -o FILE | systems
    dsar cancel ID | retry ID SYSTEM | extend ID --months N --reason TEXT
    dsar demo                              all of the above on the embedded stack, in one command
    dsar archive verify FILE --identity KEYFILE   decrypt an archive, check its hashes and schemas

This module only parses arguments, builds the Settings (it is the one caller of `Settings.load()`)
and runs a coroutine; the work is done in dsar_service.client, dsar_service.demo, and the modules
each command names. Errors are one line on stderr; personal data is never printed.

Exit codes: 0 done; 1 the operation failed (a request FAILED or CANCELLED, a download that does not
verify, an error from the service); 2 bad usage or settings; 3 the service cannot be reached;
130 interrupted (Ctrl-C). `serve` and `connectors run` exit 0 when stopped by SIGINT or SIGTERM.
"""

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsar.v1 import dsar_pb2
from dsar_common.observability import configure_logging, configure_tracing
from dsar_common.settings import Settings, SettingsError
from dsar_service.client import (
    KINDS,
    UNSUCCESSFUL_REQUEST_STATES,
    ClientError,
    DsarClient,
    ServiceUnavailable,
    SubjectFields,
    UsageError,
    build_submit_request,
    follow,
    human_bytes,
    make_view,
    parse_request_state,
    read_recipient_file,
    request_details,
    request_line,
    save_archive,
    system_info_line,
    to_json,
)

if TYPE_CHECKING:
    from dsar_service.bench import BenchOptions
    from dsar_service.stack import StackInfo, StackStatus

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

POSTGRES_HELP = (
    "for a stack it starts: auto ($DSAR_STACK_POSTGRES_URL, else 127.0.0.1:5432, else embedded), "
    "embedded (its own server in the state folder), or a postgresql:// URL"
)

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


# --- the commands ------------------------------------------------------------------------------


async def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from dsar_service import stack

    if args.action == "up":
        _print_stack_info(await stack.stack_up(settings.state_dir, postgres=args.postgres))
        return EXIT_OK
    if args.action == "down":
        await stack.stack_down(settings.state_dir)
    status = stack.stack_status(settings.state_dir)
    _print_stack_status(status)
    if args.action == "down":
        return EXIT_FAILED if status.any_running else EXIT_OK
    return EXIT_OK if status.up else EXIT_FAILED


def _print_stack_info(info: "StackInfo") -> None:
    verb = "already running" if info.already_running else f"up in {info.startup_seconds:.1f}s"
    print(f"stack {verb} ({info.state_dir})")
    print(f"  kafka     {info.kafka_bootstrap}")
    print(f"  mongodb   {info.mongodb_url}")
    print(f"  postgres  {info.postgres_url}")
    print(f"  service   {info.grpc_address} (database {info.database_url})")
    print(f"  settings  {info.settings_file}")


def _print_stack_status(status: "StackStatus") -> None:
    print(f"stack in {status.state_dir}")
    for component in status.components:
        port = f"port {component.port}" if component.port else ""
        pid = f"pid {component.pid}" if component.pid else ("external" if not component.managed else "")
        print(f"  {component.component.value:<9} {component.state.value:<12} {port:<11} {pid}".rstrip())


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from dsar_service.app import serve

    keep_startup_out_of_collections()
    await serve(settings)
    return EXIT_OK


async def _connectors_run(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.runtime import run_connectors

    keep_startup_out_of_collections()
    configure_tracing("dsar-connectors", settings.trace_export)
    await run_connectors(settings, args.system or None)
    return EXIT_OK


async def _connectors_new(args: argparse.Namespace, settings: Settings) -> int:
    """Write a working skeleton of a new connector, and its conformance test."""
    from connectors.scaffold import entry_point, write_connector_skeleton

    try:
        paths = write_connector_skeleton(args.name, Path(args.dir), args.store, tests=Path(args.tests))
    except (ValueError, FileExistsError) as error:
        raise UsageError(str(error)) from error
    for path in paths:
        print(f"wrote {path}")
    print('register it in pyproject.toml under [project.entry-points."dsar.connectors"]:')
    print(f"  {entry_point(args.name, Path(args.dir))}")
    return EXIT_OK


def keep_startup_out_of_collections() -> None:
    """For a long-running process, once its code is imported: the modules, classes and functions
    (most of its heap) live as long as it does, so they are moved out of the garbage collector's
    full scans (`gc.freeze`, after a collection so that no garbage is kept). On the bench's large
    request, the service's full collections took 2 x 12 ms instead of 1 x 35 ms (one run each)."""
    gc.collect()
    gc.freeze()


def bench_options(args: argparse.Namespace) -> "BenchOptions":
    """What `dsar bench`'s command line asks for."""
    from dsar_service.bench import DEFAULT_REPEAT, BenchOptions

    return BenchOptions(
        quick=args.quick,
        only=args.only,
        postgres=args.postgres,
        profile_dir=Path(args.profile) if args.profile else None,
        work_dir=Path(args.keep) if args.keep else None,
        keep_work_dir=bool(args.keep),
        repeat=args.repeat or DEFAULT_REPEAT,
    )


def _repeat(text: str) -> int:
    """`dsar bench --repeat N`: a whole number from 1 to MAX_REPEAT."""
    from dsar_service.bench import MAX_REPEAT

    if not text.isdigit() or not 1 <= int(text) <= MAX_REPEAT:
        raise argparse.ArgumentTypeError(f"a number of runs from 1 to {MAX_REPEAT}")
    return int(text)


async def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from dsar_service.bench import run_bench

    return await run_bench(bench_options(args), sys.stdout)


async def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute the audit trail's hash chain in the service database."""
    from dsar_service.store import AuditLog, open_pool

    async with open_pool(settings.database_url, size=1) as pool:
        report = await AuditLog(pool).verify()
    print(f"audit trail: {report.entries} entries, {'intact' if report.intact else 'TAMPERED'}")
    for problem in report.problems:
        print(f"  {problem}")
    return EXIT_OK if report.intact else EXIT_FAILED


def submit_request_from_args(args: argparse.Namespace) -> dsar_pb2.SubmitRequest:
    """The SubmitRequest that `dsar submit`'s arguments describe (reads --recipient-file if given)."""
    recipient = read_recipient_file(Path(args.recipient_file)) if args.recipient_file else args.recipient
    subject = SubjectFields(
        emails=args.email,
        phones=args.phone,
        nir=args.nir or "",
        person_ids=args.person_id,
        policy_numbers=args.policy_number,
        visitor_ids=args.visitor_id,
        candidate_ids=args.candidate_id,
        first_name=args.first_name or "",
        last_name=args.last_name or "",
        birth_date=args.birth_date or "",
    )
    return build_submit_request(args.kind, subject, recipient, args.request_key, args.system)


async def _submit(args: argparse.Namespace, settings: Settings) -> int:
    request = submit_request_from_args(args)
    async with DsarClient.connect(settings) as client:
        response = await client.submit(request)
    if args.json:
        _print_json({"created": response.created, "request": to_json(response.request)})
    else:
        print(response.request.request_id)
        if not response.created:
            print("(an earlier submission with this request key had already created it)", file=sys.stderr)
    return EXIT_OK


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    async with DsarClient.connect(settings) as client:
        request = await client.get(args.request_id)
    if args.json:
        _print_json(to_json(request))
    else:
        print("\n".join(request_details(request)))
    return EXIT_OK


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        states = [parse_request_state(name) for name in args.state]
    except ValueError as error:
        raise UsageError(f"unknown request state {error}") from None
    async with DsarClient.connect(settings) as client:
        requests = [r async for r in client.list_requests(states, overdue_only=args.overdue)]
    if args.json:
        _print_json([to_json(r) for r in requests])
    else:
        for request in requests:
            print(request_line(request))
    return EXIT_OK


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    async with DsarClient.connect(settings) as client:
        request = await follow(client.watch(args.request_id), make_view(sys.stdout))
    return EXIT_FAILED if request.state in UNSUCCESSFUL_REQUEST_STATES else EXIT_OK


async def _download(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.output)
    async with DsarClient.connect(settings) as client:
        info = await save_archive(client.download(args.request_id), target)
    print(f"{target}: {human_bytes(info.size_bytes)}, sha256 {info.sha256} (verified)")
    return EXIT_OK


async def _systems(args: argparse.Namespace, settings: Settings) -> int:
    async with DsarClient.connect(settings) as client:
        systems = await client.list_systems()
    if args.json:
        _print_json([to_json(s) for s in systems])
    else:
        width = max((len(s.name) for s in systems), default=6)
        for info in systems:
            print(system_info_line(info, width))
        if not systems:
            print("no connector has announced itself yet", file=sys.stderr)
    return EXIT_OK


async def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    async with DsarClient.connect(settings) as client:
        print(request_line(await client.cancel(args.request_id)))
    return EXIT_OK


async def _retry(args: argparse.Namespace, settings: Settings) -> int:
    async with DsarClient.connect(settings) as client:
        print(request_line(await client.retry_system(args.request_id, args.system)))
    return EXIT_OK


async def _extend(args: argparse.Namespace, settings: Settings) -> int:
    async with DsarClient.connect(settings) as client:
        print(request_line(await client.extend_deadline(args.request_id, args.months, args.reason)))
    return EXIT_OK


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from dsar_service.demo import DemoOptions, run_demo

    options = DemoOptions(
        seed=args.seed, keep_stack=args.keep_stack, timeout_seconds=args.timeout, postgres=args.postgres
    )
    return await run_demo(settings, options, sys.stdout, reload_settings=lambda: load_settings(args))


async def _archive_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Offline: needs no service. Decrypts with pyrage (the dev extra) or the age command-line tool."""
    from dsar_service.archive import VerifyError, verify_archive

    try:
        report = await asyncio.to_thread(verify_archive, Path(args.file), Path(args.identity))
    except (VerifyError, OSError) as error:
        print(f"dsar: {_one_line(error) if isinstance(error, OSError) else error}", file=sys.stderr)
        return EXIT_FAILED
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# --- the parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's parser sets `handler` (and `daemon` for long runners)."""
    parser = argparse.ArgumentParser(prog="dsar", description="GDPR data-subject requests, end to end.")
    parser.add_argument("--state-dir", help="the state folder (default: $DSAR_STATE_DIR or .dsar)")
    parser.add_argument("--server", help="the service's address, host:port (default: from the settings)")
    parser.add_argument("--insecure", action="store_true", help="talk to the service in plaintext (no TLS)")
    parser.add_argument("--log-level", help="INFO for serve, connectors run and demo; WARNING otherwise")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = commands.add_parser("stack", help="start, stop or inspect the embedded stack")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--postgres", default="auto", help=POSTGRES_HELP)
    stack.set_defaults(handler=_stack)

    serve = commands.add_parser("serve", help="run the gRPC service until stopped")
    serve.set_defaults(handler=_serve, daemon=True)

    connectors = commands.add_parser("connectors", help="run the connectors of the source systems")
    connector_commands = connectors.add_subparsers(dest="connectors_command", required=True, metavar="ACTION")
    new = connector_commands.add_parser("new", help="write a skeleton of a new connector and its conformance test")
    new.add_argument("name", help="the system's name: lower-case letters, digits and _")
    new.add_argument("--store", choices=("postgresql", "mongodb"), default="postgresql")
    new.add_argument("--dir", default="connectors", help="where the connector goes (default: connectors)")
    new.add_argument("--tests", default="tests/connectors", help="where its test goes (default: tests/connectors)")
    new.set_defaults(handler=_connectors_new)
    run = connector_commands.add_parser("run", help="run the installed connectors until stopped")
    run.add_argument("--system", action="append", default=[], help="only this system (repeatable)")
    run.set_defaults(handler=_connectors_run, daemon=True)

    submit = commands.add_parser("submit", help="submit a data-subject request; prints its id")
    submit.add_argument("--kind", required=True, choices=sorted(KINDS), help="the right exercised")
    subject = submit.add_argument_group("the subject (verified identifiers; repeatable ones say so)")
    subject.add_argument("--email", action="append", default=[], help="repeatable")
    subject.add_argument("--phone", action="append", default=[], help="E.164 or French format; repeatable")
    subject.add_argument("--nir", help="French social security number, 15 characters")
    subject.add_argument("--person-id", action="append", default=[], help="policy system UUID; repeatable")
    subject.add_argument("--policy-number", action="append", default=[], help="repeatable")
    subject.add_argument("--visitor-id", action="append", default=[], help="web cookie id; repeatable")
    subject.add_argument("--candidate-id", action="append", default=[], help="recruitment id; repeatable")
    subject.add_argument("--first-name")
    subject.add_argument("--last-name")
    subject.add_argument("--birth-date", help="YYYY-MM-DD")
    recipient = submit.add_mutually_exclusive_group(required=True)
    recipient.add_argument("--recipient", help="age1… or ssh-ed25519/ssh-rsa public key to encrypt to")
    recipient.add_argument("--recipient-file", help="a file holding that one public key")
    submit.add_argument("--request-key", required=True, help="your idempotency key, [A-Za-z0-9._:-]{1,128}")
    submit.add_argument("--system", action="append", default=[], help="only ask this system (repeatable)")
    submit.add_argument("--json", action="store_true", help="print the created request as JSON")
    submit.set_defaults(handler=_submit)

    status = commands.add_parser("status", help="show one request and its per-system progress")
    status.add_argument("request_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    listing = commands.add_parser("list", help="list requests, newest first")
    listing.add_argument("--state", action="append", default=[], help="collecting, ready, … (repeatable)")
    listing.add_argument("--overdue", action="store_true", help="only requests past their due date")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    watch = commands.add_parser("watch", help="follow a request's progress until it ends")
    watch.add_argument("request_id")
    watch.set_defaults(handler=_watch)

    download = commands.add_parser("download", help="download a ready request's encrypted archive")
    download.add_argument("request_id")
    download.add_argument("-o", "--output", required=True, help="the file to write (replaced atomically)")
    download.set_defaults(handler=_download)

    systems = commands.add_parser("systems", help="the source systems whose connectors are seen")
    systems.add_argument("--json", action="store_true")
    systems.set_defaults(handler=_systems)

    cancel = commands.add_parser("cancel", help="cancel a request and destroy what was collected")
    cancel.add_argument("request_id")
    cancel.set_defaults(handler=_cancel)

    retry = commands.add_parser("retry", help="run one system of a request again")
    retry.add_argument("request_id")
    retry.add_argument("system")
    retry.set_defaults(handler=_retry)

    extend = commands.add_parser("extend", help="push a request's due date back (1 or 2 months)")
    extend.add_argument("request_id")
    extend.add_argument("--months", type=int, required=True, choices=[1, 2])
    extend.add_argument("--reason", required=True, help="the reason given to the subject")
    extend.set_defaults(handler=_extend)

    demo = commands.add_parser("demo", help="run the whole thing on the embedded stack, in one command")
    demo.add_argument("--seed", type=int, default=15, help="of the generated population (default 15)")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run (default 300)")
    demo.add_argument("--keep-stack", action="store_true", help="leave the stack running afterwards")
    demo.add_argument("--postgres", default="auto", help=POSTGRES_HELP)
    demo.set_defaults(handler=_demo)

    archive = commands.add_parser("archive", help="work on a downloaded archive (offline)")
    archive_commands = archive.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    verify = archive_commands.add_parser(
        "verify", help="decrypt an archive, check every hash and validate every data file against its schema"
    )
    verify.add_argument("file", help="the encrypted archive (.age)")
    verify.add_argument("--identity", required=True, help="the age identity file (or SSH private key) to decrypt with")
    verify.set_defaults(handler=_archive_verify)

    bench = commands.add_parser("bench", help="speed and memory at scale, on a stack of its own (~1-2 min)")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, under a minute: checks the bench runs")
    bench.add_argument("--only", choices=["large", "tenth", "many", "crypto"], help="run one scenario")
    bench.add_argument("--postgres", default="embedded", help=POSTGRES_HELP)
    bench.add_argument("--profile", metavar="DIR", help="py-spy profiles of the service and connectors (needs py-spy)")
    bench.add_argument("--keep", metavar="DIR", help="run in a new folder in DIR, kept after (logs, stack)")
    bench.add_argument("--repeat", metavar="N", type=_repeat,
                       help="time the large and tenth requests N times (1-9, default 3), each against its floor;"
                            " the median run is judged")  # fmt: skip
    bench.set_defaults(handler=_bench)

    audit = commands.add_parser("audit", help="the audit trail of the service")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_verify = audit_commands.add_parser("verify", help="check that no audit entry was edited or deleted")
    audit_verify.set_defaults(handler=_audit_verify)
    return parser


def load_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """The settings from the environment and the state folder's settings file, then the global flags."""
    env = dict(os.environ if environ is None else environ)
    if args.state_dir:
        env["DSAR_STATE_DIR"] = args.state_dir
    settings = Settings.load(env)
    if args.server:
        settings = settings.with_values(server=args.server)
    if args.insecure:
        settings = settings.with_values(insecure=True)
    return settings


# --- running -----------------------------------------------------------------------------------


def _run(coroutine: Coroutine[Any, Any, int], daemon: bool) -> int:
    """Run the command's coroutine; SIGTERM cancels it as Ctrl-C does, so cleanups always run."""

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coroutine
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if daemon:
            return EXIT_OK
        print("dsar: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the command, and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    daemon = getattr(args, "daemon", False)
    default_level = "INFO" if daemon or args.command == "demo" else "WARNING"
    try:
        settings = load_settings(args)
    except SettingsError as error:
        print(f"dsar: {error}", file=sys.stderr)
        return EXIT_USAGE
    # Daemons log JSON lines (request id, system, trace id) unless told otherwise; commands, text.
    configure_logging(
        args.log_level or default_level, json_lines=daemon and settings.log_format == "json", stream=sys.stderr
    )
    handler: Handler = args.handler
    try:
        return _run(handler(args, settings), daemon=daemon)
    except UsageError as error:
        print(f"dsar: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceUnavailable as error:
        print(f"dsar: {error.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ClientError as error:
        print(f"dsar: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    except SettingsError as error:
        print(f"dsar: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # the edge: one line, the traceback only when debugging
        logging.getLogger("dsar").debug("command failed", exc_info=True)
        print(f"dsar: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(error: BaseException) -> str:
    """`StackError: kafka did not start…`: the error's class and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
