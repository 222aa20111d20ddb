"""Identity rounds (who is asked when) and deadline arithmetic."""

from datetime import UTC, datetime

from dsar_service.model import SystemInfo, SystemState
from dsar_service.requests.rounds import plan_dispatch
from dsar_service.requests.service import add_months

P, D, C, F = SystemState.PENDING, SystemState.DISPATCHED, SystemState.COMPLETED, SystemState.FAILED


def info(name: str, discovers: tuple[str, ...] = ()) -> SystemInfo:
    return SystemInfo(name, datetime.now(UTC), ("i1",), "1", True, b"k" * 32, "kid", discovers, ("email",))


INFOS = {
    "policy": info("policy", ("person_id",)),
    "crm": info("crm", ("person_id",)),
    "claims": info("claims"),
    "analytics": info("analytics"),
}


def test_discoverers_go_first() -> None:
    states = {"policy": P, "crm": P, "claims": P, "analytics": P}
    assert plan_dispatch(states, INFOS) == ["crm", "policy"]


def test_the_others_wait_until_every_discoverer_has_ended() -> None:
    assert plan_dispatch({"policy": C, "crm": D, "claims": P, "analytics": P}, INFOS) == []
    assert plan_dispatch({"policy": C, "crm": F, "claims": P, "analytics": P}, INFOS) == ["analytics", "claims"]


def test_a_system_without_an_announced_connector_is_not_dispatched() -> None:
    assert plan_dispatch({"policy": C, "hr": P}, INFOS) == []


def test_without_discoverers_everything_goes_at_once() -> None:
    assert plan_dispatch({"claims": P, "analytics": P}, INFOS) == ["analytics", "claims"]


def test_due_date_is_one_calendar_month_later_clamped_to_month_end() -> None:
    assert add_months(datetime(2026, 1, 31, 10, tzinfo=UTC), 1) == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 25, tzinfo=UTC), 2) == datetime(2027, 1, 25, tzinfo=UTC)
    assert add_months(datetime(2028, 1, 30, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
