"""Identity rounds (who is asked when, who again, who not at all) and deadline arithmetic."""

from datetime import UTC, datetime

from connectors.sdk.identifiers import Ident, Identifier
from dsar_service.model import SystemInfo, SystemState
from dsar_service.requests.rounds import Plan, SystemRound, plan_rounds
from dsar_service.requests.service import add_months

P, D, C, F = SystemState.PENDING, SystemState.DISPATCHED, SystemState.COMPLETED, SystemState.FAILED


def info(name: str, accepts: tuple[str, ...], discovers: tuple[str, ...] = ()) -> SystemInfo:
    return SystemInfo(name, datetime.now(UTC), ("i1",), "1", True, b"k" * 32, "kid", discovers, accepts)


# The five systems of world.md, as their connectors announce themselves.
INFOS = {
    "policy": info("policy", ("email", "nir", "person_id", "phone", "birth_date"), ("person_id", "email", "nir")),
    "crm": info("crm", ("email", "person_id", "phone", "birth_date"), ("person_id", "email")),
    "recruitment": info("recruitment", ("email", "candidate_id"), ("candidate_id",)),
    "claims": info("claims", ("person_id",)),
    "analytics": info("analytics", ("person_id", "visitor_id"), ("visitor_id",)),
}
EMAIL = Identifier(Ident.EMAIL, "jean@example.com")
PERSON = Identifier(Ident.PERSON_ID, "3f1d2c4e-0000-4000-8000-000000000001", "policy")


def plan(states: dict[str, SystemState], identifiers: list[Identifier], rounds: dict[str, int] | None = None,
         counts: dict[str, int] | None = None) -> Plan:  # fmt: skip
    rows = {
        name: SystemRound(state, (rounds or {}).get(name, 1), (counts or {}).get(name, len(identifiers)))
        for name, state in states.items()
    }
    return plan_rounds(rows, INFOS, identifiers)


def test_systems_that_know_an_identifier_go_first_and_the_others_wait_for_discoveries() -> None:
    first = plan(dict.fromkeys(INFOS, P), [EMAIL])
    # policy and crm each may find what the other lacks, but policy may find all crm may and more:
    # policy goes first, crm waits with claims and analytics
    assert first == Plan(dispatch=["policy", "recruitment"], ask_again=[], skip=[])
    second = plan({**dict.fromkeys(INFOS, P), "policy": C, "recruitment": C}, [EMAIL, PERSON])
    assert second.dispatch == ["analytics", "claims", "crm"]


def test_two_systems_waiting_on_each_other_are_both_asked_when_neither_covers_the_other() -> None:
    infos = {
        "a": info("a", ("email", "nir"), ("person_id",)),
        "b": info("b", ("email", "person_id"), ("nir",)),
        "c": info("c", ("email", "person_id", "nir"), ("person_id", "nir")),
    }
    both = {name: SystemRound(P, 1, 1) for name in ("a", "b")}
    assert plan_rounds(both, infos, [EMAIL]).dispatch == ["a", "b"], "each may find what the other lacks"
    # c may find all that a and b may, and more: it goes first, they wait for its answer
    assert plan_rounds({**both, "c": SystemRound(P, 1, 1)}, infos, [EMAIL]).dispatch == ["c"]


def test_the_others_are_asked_once_a_kind_they_search_by_is_known() -> None:
    states = {"policy": D, "crm": D, "recruitment": C, "claims": P, "analytics": P}
    assert plan(states, [EMAIL]).dispatch == [], "policy or crm may find a person_id"
    states["policy"] = C
    # a person_id is known: they go now; should crm find another one, they are asked again
    assert plan(states, [EMAIL, PERSON]).dispatch == ["analytics", "claims"]


def test_a_system_that_answered_before_a_new_identifier_was_found_is_asked_again_once() -> None:
    states = {"policy": C, "crm": C, "recruitment": C, "claims": P, "analytics": P}
    counts = {"policy": 2, "crm": 1, "recruitment": 1}  # crm was asked before policy found the person_id
    assert plan(states, [EMAIL, PERSON], counts=counts).ask_again == ["crm"]
    assert plan(states, [EMAIL, PERSON], rounds={"crm": 2}, counts=counts).ask_again == []


def test_what_a_system_found_itself_does_not_make_it_asked_again() -> None:
    states = {"policy": C, "claims": P}
    assert plan(states, [EMAIL, PERSON], counts={"policy": 1}).ask_again == []


def test_weak_identifiers_found_later_do_not_cause_a_new_round() -> None:
    phone = Identifier(Ident.PHONE, "+33612345678", "crm")
    states = {"policy": C, "crm": C}
    assert plan(states, [EMAIL, phone], counts={"policy": 1, "crm": 2}).ask_again == []


def test_a_system_with_nothing_to_search_by_is_skipped_when_nothing_else_can_help() -> None:
    states = {"policy": C, "crm": F, "recruitment": C, "claims": P, "analytics": P}
    assert plan(states, [EMAIL]) == Plan(dispatch=[], ask_again=[], skip=["analytics", "claims"])
    assert plan({"policy": D, "claims": P}, [EMAIL]).skip == [], "policy may still find a person_id"


def test_a_system_without_an_announced_connector_is_not_dispatched() -> None:
    assert plan({"policy": C, "hr": P}, [EMAIL]).dispatch == []


def test_due_date_is_one_calendar_month_later_clamped_to_month_end() -> None:
    assert add_months(datetime(2026, 1, 31, 10, tzinfo=UTC), 1) == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 25, tzinfo=UTC), 2) == datetime(2027, 1, 25, tzinfo=UTC)
    assert add_months(datetime(2028, 1, 30, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
