"""The Kafka topic names, in one place (see protos/dsar/bus/v1/bus.proto for what travels on each)."""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Topic names under a prefix, so that several deployments (or test runs) can share a cluster."""

    prefix: str = "dsar"

    def commands(self, system: str) -> str:
        """The topic a system's connectors consume commands from."""
        return f"{self.prefix}.commands.{system}"

    @property
    def results(self) -> str:
        """The topic every connector produces result chunks, progress and completions to."""
        return f"{self.prefix}.results"

    @property
    def heartbeats(self) -> str:
        """The topic connectors announce themselves and their system's public key on."""
        return f"{self.prefix}.heartbeats"

    @property
    def dead_letters(self) -> str:
        """Where messages that could not be decoded go, unchanged, with headers saying why."""
        return f"{self.prefix}.deadletter"

    def every(self, systems: Iterable[str] = ()) -> list[str]:
        """The topics the service and the connectors of `systems` use: results, heartbeats, dead
        letters, and each system's commands."""
        return [self.results, self.heartbeats, self.dead_letters, *(self.commands(s) for s in systems)]

    def command_group(self, system: str) -> str:
        """The consumer group shared by every instance of a system's connector."""
        return f"{self.prefix}.connector.{system}"

    @property
    def service_group(self) -> str:
        """The consumer group shared by every replica of the service for the result topic."""
        return f"{self.prefix}.service"
