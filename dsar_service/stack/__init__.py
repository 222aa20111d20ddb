"""The embedded development stack: Tansu (Kafka protocol), SecantusDB (MongoDB protocol) and PostgreSQL.

Used by `dsar stack up|down|status`, `dsar demo`, the benchmark and the integration tests; never
by the service in production, which is handed real Kafka, MongoDB and PostgreSQL URLs.

    info = await stack_up(Path(".dsar"))      # returns while the servers run on, detached
    stack_status(Path(".dsar")).up            # True
    await stack_down(Path(".dsar"))           # stops them; data and stack.toml stay

    async with running_stack(tmp_path) as info:   # tests: fresh servers, always stopped after
        ...

Everything lives in one state folder: pid records, logs, data, and `stack.toml`, the settings
file that `Settings.load()` reads (`DSAR_STATE_DIR` names the folder). See `_layout.py` for the
folder's contents and `_postgres.py` for how PostgreSQL is chosen (`DSAR_STACK_POSTGRES_URL`,
else 127.0.0.1:5432, else an embedded server).
"""

from dsar_service.stack._model import (
    Component,
    ComponentStatus,
    StackDatabases,
    StackError,
    StackInfo,
    StackStatus,
    State,
)
from dsar_service.stack._postgres import POSTGRES_URL_VARIABLE
from dsar_service.stack._servers import TANSU_FETCH_WAIT_MS
from dsar_service.stack._stack import running_stack, stack_down, stack_status, stack_up

__all__ = [
    "POSTGRES_URL_VARIABLE",
    "TANSU_FETCH_WAIT_MS",
    "Component",
    "ComponentStatus",
    "StackDatabases",
    "StackError",
    "StackInfo",
    "StackStatus",
    "State",
    "running_stack",
    "stack_down",
    "stack_status",
    "stack_up",
]
