"""The stack's PostgreSQL server as processes of this machine, so that the bench can count its CPU.

The server's own backend pid (`pg_backend_pid()`) leads, up its line of `postgres` processes, to the
postmaster, whose process tree is the whole server: backends, background workers, and the exited
backends (counted in the postmaster's children times). Only for a server on the loopback interface
or a Unix socket: a remote server's pids mean nothing here.
"""

import contextlib
from urllib.parse import urlsplit

import asyncpg

from dsar_service.bench._proc import ancestor_named

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


async def local_postmaster(database_url: str) -> int | None:
    """The pid of the postmaster serving `database_url`, or None when it is not a process of this machine."""
    host = urlsplit(database_url).hostname
    if host is not None and host not in _LOCAL_HOSTS and not host.startswith("/"):
        return None
    with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        connection = await asyncpg.connect(database_url, timeout=10)
        try:  # while the backend lives: it exits when the connection closes
            return ancestor_named(await connection.fetchval("SELECT pg_backend_pid()"), "postgres")
        finally:
            await connection.close()
    return None
