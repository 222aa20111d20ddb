"""deploy/ agrees with the code: setting names, topic and group names, systems, the health service name.

scripts/validate-deploy checks the files against their schemas; these tests check what no schema knows.
"""

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dsar.v1 import dsar_pb2
from dsar_common.settings import Settings
from dsar_common.topics import Topics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEMS = ("policy", "claims", "crm", "recruitment", "analytics")
# Settings the manifests expect that the service does not have yet (deploy/README.md, "Health").
SAMPLE_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # 32 bytes, base64


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def base_documents() -> list[dict[str, Any]]:
    return [
        doc for path in sorted((DEPLOY / "k8s" / "base").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
    ]


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in base_documents() if d and d.get("kind") == "Deployment"}


def dsar_compose_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if (service.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"
    }


def interpolate(value: str) -> str:
    """Compose's ${VAR…} with sample values: keys for keys, words for the rest."""
    return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: SAMPLE_KEY if "KEY" in m[1] else "sample", value)


def manifest_setting_names() -> set[str]:
    names = {name for service in dsar_compose_services().values() for name in service["environment"]}
    for deployment in deployments().values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names |= {variable["name"] for variable in container.get("env", [])}
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    for generator in kustomization["configMapGenerator"]:
        names |= {literal.split("=", 1)[0] for literal in generator["literals"]}
    return names


def test_every_setting_the_manifests_set_is_a_setting() -> None:
    known = {f"DSAR_{name.upper()}" for name in Settings.from_values({}).__dataclass_fields__ if name != "kafka"}
    known |= {f"DSAR_KAFKA_{name.upper()}" for name in Settings.from_values({}).kafka.__dataclass_fields__}
    names = manifest_setting_names()
    assert names - known == set()


@pytest.mark.parametrize("name", sorted(dsar_compose_services()))
def test_each_compose_process_gets_settings_it_can_load(name: str) -> None:
    environment = {key: interpolate(str(value)) for key, value in dsar_compose_services()[name]["environment"].items()}
    settings = Settings.from_values({key.removeprefix("DSAR_").lower(): value for key, value in environment.items()})
    command = dsar_compose_services()[name]["command"]
    if command == ["serve"]:
        assert settings.require_master_key()
        assert settings.insecure and settings.listen.startswith("127.0.0.1:"), "insecure mode binds loopback only"
    else:
        assert command[:3] == ["connectors", "run", "--system"]
        assert settings.require_connector_key()
    assert settings.kafka.bootstrap == "kafka:9092"


def expected_topics() -> set[str]:
    topics = Topics()
    return set(topics.every(SYSTEMS))


def test_compose_and_kubernetes_declare_the_topics_of_dsar_common() -> None:
    assert set(compose()["services"]["kafka-topics"]["environment"]["TOPICS"].split()) == expected_topics()
    kafka_topics = [d for d in base_documents() if d and d["kind"] == "KafkaTopic"]
    assert {d["spec"]["topicName"] for d in kafka_topics} == expected_topics()


def test_kafka_users_may_read_exactly_the_consumer_groups_of_dsar_common() -> None:
    topics = Topics()
    users = {d["metadata"]["name"]: d for d in base_documents() if d and d["kind"] == "KafkaUser"}
    groups = {
        name: {
            acl["resource"]["name"]
            for acl in user["spec"]["authorization"]["acls"]
            if acl["resource"]["type"] == "group"
        }
        for name, user in users.items()
    }
    assert groups == {
        "dsar-service": {topics.service_group},
        **{f"dsar-connector-{system}": {topics.command_group(system)} for system in SYSTEMS},
    }


def test_there_is_a_connector_deployment_and_compose_service_per_connector_module() -> None:
    names = {importlib.import_module(f"connectors.{system}").connector.name for system in SYSTEMS}
    assert names == set(SYSTEMS)
    assert {name.removeprefix("dsar-connector-") for name in deployments() if name != "dsar-service"} == names
    compose_systems = {s["command"][-1] for s in dsar_compose_services().values() if s["command"][0] == "connectors"}
    assert compose_systems == names


def test_the_readiness_probe_asks_for_the_api_service_by_its_proto_name() -> None:
    container = deployments()["dsar-service"]["spec"]["template"]["spec"]["containers"][0]
    api = dsar_pb2.DESCRIPTOR.services_by_name["DsarService"].full_name
    assert container["readinessProbe"]["grpc"]["service"] == api
    health_port = next(port["containerPort"] for port in container["ports"] if port["name"] == "health")
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env["DSAR_HEALTH_LISTEN"].endswith(f":{health_port}")
    assert all(container[probe]["grpc"]["port"] == health_port for probe in ("startupProbe", "livenessProbe"))
