"""The values the stack hands back: what runs, where, and how it went. No behaviour here."""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType


class StackError(Exception):
    """The stack could not start, be read or stop; the message names the component and its log."""


class Component(enum.StrEnum):
    """The servers of the embedded stack, by the role they play for dsar."""

    KAFKA = "kafka"  # Tansu, the Kafka-protocol broker, memory storage
    MONGODB = "mongodb"  # SecantusDB, the MongoDB-protocol server of the crm/recruitment/analytics systems
    POSTGRES = "postgres"  # the service's database and the policy/claims systems


class State(enum.StrEnum):
    """How a component looks from outside."""

    UP = "up"  # its process lives (or, external, it answers) and its port accepts connections
    DOWN = "down"  # not running (no pid record, or the recorded process is gone)
    UNRESPONSIVE = "unresponsive"  # the process lives but its port refuses connections


@dataclass(frozen=True)
class ComponentStatus:
    """One component: its state, port and pid.

    `pid` is None for a PostgreSQL server the stack did not start (`managed` is then False): `down`
    leaves such a server alone. `startup_seconds` is the time from spawn to readiness in the
    `stack_up` call that returned this status, None when the component was already running.
    """

    component: Component
    state: State
    port: int | None = None
    pid: int | None = None
    managed: bool = True
    description: str = ""
    log: Path | None = None
    startup_seconds: float | None = None


@dataclass(frozen=True)
class StackStatus:
    """Every component of the stack in one state folder."""

    state_dir: Path
    components: tuple[ComponentStatus, ...]

    @property
    def up(self) -> bool:
        """True when every component is up."""
        return all(c.state is State.UP for c in self.components)

    @property
    def any_running(self) -> bool:
        """True when some process of the stack still lives (up or unresponsive)."""
        return any(c.state is not State.DOWN and c.managed for c in self.components)

    def get(self, component: Component) -> ComponentStatus:
        """The status of one component."""
        for status in self.components:
            if status.component is component:
                return status
        raise KeyError(component)


@dataclass(frozen=True)
class StackDatabases:
    """The PostgreSQL databases the stack makes sure exist: the service's and one per source system.

    The defaults are the production names of world.md (`dsar`, `policy`, `claims`); tests give
    unique names so that sessions sharing one server never see each other's data.
    """

    service: str = "dsar"
    sources: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"policy": "policy", "claims": "claims"})
    )

    def all(self) -> tuple[str, ...]:
        """Every database name, the service's first."""
        return (self.service, *self.sources.values())


@dataclass(frozen=True)
class StackInfo:
    """A running stack: the endpoints the other commands use, and the settings file written for them.

    `postgres_url` names the server without a database (as `source_postgres_url` does);
    `database_url` names the service's database on it. `already_running` is True when `stack_up`
    found every component up and started nothing. `startup_seconds` is the wall time of that call.
    """

    state_dir: Path
    settings_file: Path
    kafka_bootstrap: str
    mongodb_url: str
    postgres_url: str
    database_url: str
    grpc_address: str
    components: tuple[ComponentStatus, ...]
    already_running: bool
    startup_seconds: float

    def get(self, component: Component) -> ComponentStatus:
        """The status of one component."""
        return StackStatus(self.state_dir, self.components).get(component)
