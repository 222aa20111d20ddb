"""SecantusDB and Tansu as plain processes for one test module (no embedded stack around them).

    with local_mongodb(folder) as url: ...     # mongodb://127.0.0.1:PORT/?directConnection=true
    with local_kafka() as bootstrap: ...       # 127.0.0.1:PORT, in memory
    tansu_settings(bootstrap)                  # the KafkaSettings of its clients

Each starts on a free port, is handed over once its port accepts connections, logs to a file
in `folder` (SecantusDB) or nowhere (Tansu), and is terminated at the end (killed if it lingers).
"""

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from dsar_common.settings import KafkaSettings
from dsar_service.stack import TANSU_FETCH_WAIT_MS
from dsar_service.stack._net import LOOPBACK, free_port
from dsar_service.stack._servers import secantus_binary, tansu_argv

STARTUP_SECONDS = 30.0


@contextlib.contextmanager
def serving(argv: Sequence[str], port: int, log: IO[bytes] | None = None) -> Iterator[None]:
    """Run `argv` until the end of the `with`, from the moment `port` accepts connections."""
    output = log if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(list(argv), stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
                break
            assert process.poll() is None and time.monotonic() < deadline, f"{argv[0]} did not start"
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def local_mongodb(folder: Path) -> Iterator[str]:
    """A SecantusDB server storing in `folder`/data, logging to `folder`/secantusd.log; its URL."""
    port = free_port()
    argv = [str(secantus_binary()), "--host", LOOPBACK, "--port", str(port), "--storage-path", str(folder / "data")]
    with (folder / "secantusd.log").open("wb") as log, serving(argv, port, log):
        yield f"mongodb://{LOOPBACK}:{port}/?directConnection=true"


@contextlib.contextmanager
def local_kafka() -> Iterator[str]:
    """A Tansu broker in memory; its bootstrap address."""
    port = free_port()
    with serving(tansu_argv(port), port):
        yield f"{LOOPBACK}:{port}"


def tansu_settings(bootstrap: str) -> KafkaSettings:
    """The Kafka settings of a client of a Tansu broker: its address, and the fetch wait the
    embedded stack uses with it (Tansu answers a fetch over several partitions only when the
    wait is over)."""
    return KafkaSettings(bootstrap=bootstrap, fetch_wait_ms=TANSU_FETCH_WAIT_MS)
