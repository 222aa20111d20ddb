"""Identity resolution in rounds: which systems to ask now, and which to ask again.

The subject arrives with some identifiers; the systems know it by others (claims and analytics
know only the policy system's `person_id`). Each system's connector announces the identifier
kinds it searches by (`accepts`) and those it can find for the others (`discovers`). Then:

- A pending system is asked as soon as it accepts a kind already known, unless another open
  system can discover a kind it accepts and that is not known yet: then it waits for that one.
  Of two systems waiting on each other, one that discovers every kind the other does, and more,
  goes first, and the other waits for its answer: policy (person id, e-mail, NIR) before CRM
  (person id, e-mail). Asked together, CRM was asked again for the person id policy found in
  17% of ordinary requests (dsar bench), a third round for those; now CRM goes with claims and
  analytics, in the second round they have anyway. (A subject CRM alone knows, a prospect, waits
  one round longer.) Two that wait on each other otherwise are both asked.
- A system that ended with an identifier set that has grown since (a strong identifier it
  accepts was found elsewhere) is asked again, once: `MAX_ROUNDS` bounds the rounds. What a
  system found itself is not new to it, even when another system reported it first.
- When nothing is open any more, a pending system that accepts none of the known kinds is
  skipped: there is nothing to search it by.

Only strong identifiers propagate (world.md §2); the collector adds them to the request.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connectors.sdk.identifiers import Ident, Identifier
from dsar_service.model import SystemInfo, SystemState

MAX_ROUNDS = 2


@dataclass(frozen=True)
class SystemRound:
    """A system's place in the rounds: its state, its round, how many identifiers it was asked with."""

    state: SystemState
    round: int
    queried_count: int


@dataclass(frozen=True)
class Plan:
    dispatch: list[str]
    ask_again: list[str]
    skip: list[str]


def plan_rounds(
    systems: Mapping[str, SystemRound],
    infos: Mapping[str, SystemInfo],
    identifiers: Sequence[Identifier],
) -> Plan:
    """What to do now, given every system of a request and the identifiers known so far."""
    known = {i.kind.value for i in identifiers if i.kind is not Ident.BIRTH_DATE}
    open_systems = {name for name, s in systems.items() if not s.state.ended}

    def accepts_known(name: str) -> bool:
        return bool(set(infos[name].accepts) & known)

    def waits_for(name: str, other: str) -> bool:
        """Whether `other`, still open, may find a kind `name` accepts and lacks."""
        if other == name or other not in open_systems or other not in infos:
            return False
        return bool(set(infos[other].discovers) & (set(infos[name].accepts) - known))

    def covers(other: str, name: str) -> bool:
        """Whether `other` may find every kind `name` may, and more: then `name` waits for it."""
        return set(infos[other].discovers) > set(infos[name].discovers)

    pending = sorted(name for name, s in systems.items() if s.state is SystemState.PENDING and name in infos)
    dispatch = []
    for name in pending:
        if not accepts_known(name):
            continue
        blockers = [other for other in open_systems if waits_for(name, other)]
        if all(
            systems[b].state is SystemState.PENDING and waits_for(b, name) and not covers(b, name) for b in blockers
        ):
            dispatch.append(name)  # no blocker, or only ones waiting on this one in turn, and not ahead of it
    in_flight = [n for n in open_systems if systems[n].state is not SystemState.PENDING]
    if not dispatch and not in_flight:
        dispatch = [name for name in pending if accepts_known(name)]  # a longer cycle: break it
    ask_again = sorted(
        name
        for name, s in systems.items()
        if s.state is SystemState.COMPLETED
        and s.round < MAX_ROUNDS
        and name in infos
        and not any(set(infos[o].discovers) & set(infos[name].accepts) for o in in_flight if o in infos)
        and any(new_for(name, i, infos[name]) for i in identifiers[s.queried_count :])
    )
    skip = []
    if not dispatch and not in_flight and not ask_again:
        skip = [name for name in pending if not accepts_known(name)]
    return Plan(dispatch, ask_again, skip)


def new_for(name: str, identifier: Identifier, info: SystemInfo) -> bool:
    """Whether an identifier found after `name` was asked is worth asking it again for."""
    return identifier.kind.strong and identifier.kind.value in info.accepts and identifier.source != name
