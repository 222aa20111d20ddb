"""The register of processing activities: complete for every connector, faithful to the policy, silent on AML."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import connectors
import dsar_service.register as register_package
from connectors.runtime.registry import load_connectors
from connectors.sdk import Connector
from dsar_service.register import RegisterError, load_labels, load_register

HERE = Path(register_package.__file__).parent


def _all_connectors() -> list[Connector]:
    """Every connector installed (entry points) and every `connectors.<module>` in the tree."""
    found = {c.name: c for c in load_connectors()}
    for module in pkgutil.iter_modules(connectors.__path__):
        if module.ispkg:
            continue
        loaded = importlib.import_module(f"connectors.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, Connector):
                found.setdefault(value.name, value)
    return list(found.values())


CONNECTORS = _all_connectors()


def test_the_register_is_versioned_and_loads() -> None:
    register = load_register()
    assert register.version and register.dpo.email == "dpo@henner.com"
    assert "Neuilly" in register.dpo.address and "CNIL" in register.supervisory_authority.name
    assert {"access", "rectification", "erasure", "objection", "portability", "restriction", "complaint"} <= {
        r.id for r in register.rights
    }


def test_there_are_connectors_to_check() -> None:
    assert "policy" in {c.name for c in CONNECTORS}


@pytest.mark.parametrize("connector", CONNECTORS, ids=lambda c: c.name)
def test_every_declared_activity_has_an_entry(connector: Connector) -> None:
    register = load_register()
    missing = {
        f"{dataset.name}.{name} -> {field.activity}"
        for dataset in connector.datasets
        for name, field in dataset.fields.items()
        if field.activity not in register.activities
    } | {f"{d.name} -> {d.activity}" for d in connector.datasets if d.activity not in register.activities}
    assert not missing, f"{connector.name}: activities without a register entry: {sorted(missing)}"


def test_each_activity_says_what_article_15_requires() -> None:
    for activity in load_register().activities.values():
        assert activity.purposes and activity.legal_bases and activity.categories, activity.id
        assert activity.recipients and activity.retention and activity.sources, activity.id


def test_the_automated_non_payment_procedure_is_described() -> None:
    decisions = load_register().activity("policy_management").automated_decisions
    assert [d.name for d in decisions] == ["Automated non-payment procedure"]
    assert "dunning_event" in decisions[0].datasets and "dunning_event.automated" in decisions[0].logic
    assert "service.qualite@henner.fr" in decisions[0].contest


def test_portability_follows_the_legal_basis() -> None:
    activities = load_register().activities
    assert activities["policy_management"].portable  # contract
    assert activities["prospection"].portable  # consent
    assert not activities["fraud_prevention"].portable  # legal obligation, legitimate interest
    assert not activities["recruitment"].portable  # legitimate interest only


def test_an_unknown_activity_is_an_error() -> None:
    with pytest.raises(RegisterError, match="no processing activity"):
        load_register().activity("nope")


def test_a_register_without_version_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "register.json"
    broken.write_text((HERE / "register.json").read_text().replace('"version": "2018-10.1",', ""))
    with pytest.raises(RegisterError, match="version"):
        load_register(broken)


@pytest.mark.parametrize("name", ["register.json", "labels.json"])
def test_no_word_of_anti_money_laundering(name: str) -> None:
    text = (HERE / name).read_text().lower()
    for word in ("money laundering", "money-laundering", "blanchiment", "l561", "terrorist", "asset freez"):
        assert word not in text, word
    assert not re.search(r"\baml\b|aml_", text)


def test_codes_name_fields_that_connectors_declare() -> None:
    declared = {f"{c.name}/{d.name}/{f}" for c in CONNECTORS for d in c.datasets for f in d.fields} | {
        f"{c.name}/{d.name}" for c in CONNECTORS for d in c.datasets
    }
    known_systems = {c.name for c in CONNECTORS}
    labels = load_labels()
    for key in [*labels.codes, *labels.datasets]:
        if key.split("/")[0] in known_systems:
            assert key in declared, key


def test_labels_decode_and_fall_back() -> None:
    labels = load_labels()
    assert labels.coded_fields("claims", "claim")["care_category"]["optical"].startswith("Optical")
    assert labels.coded_fields("policy", "dunning_event")["step"]["formal_notice"].startswith("Formal notice")
    assert labels.dataset("policy", "file_access_log").note
    assert labels.dataset("x", "some_thing").title == "Some thing"
