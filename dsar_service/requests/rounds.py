"""Identity resolution in rounds: which systems to ask now, and with which identifiers.

Systems that discover identifiers for others (the policy system finds a `person_id` from an
e-mail) are asked first. When they have all ended, what they found is added to the request's
identifiers, and the other systems are asked with the enlarged set. Only strong identifiers
propagate (world.md §2).
"""

from collections.abc import Mapping

from dsar_service.model import SystemInfo, SystemState


def plan_dispatch(states: Mapping[str, SystemState], infos: Mapping[str, SystemInfo]) -> list[str]:
    """The pending systems to dispatch now, given every system's state and what its connector announced."""
    discoverers = {system for system in states if _discovers(system, infos)}
    discovery_open = any(not states[system].ended for system in discoverers)
    return sorted(
        system
        for system, state in states.items()
        if state is SystemState.PENDING and system in infos and (system in discoverers or not discovery_open)
    )


def _discovers(system: str, infos: Mapping[str, SystemInfo]) -> bool:
    info = infos.get(system)
    return bool(info and info.discovers)
