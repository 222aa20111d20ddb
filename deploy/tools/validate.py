"""Validates everything under deploy/: each file against its schema, then against the rules it promises.

    scripts/validate-deploy            installs the tools below (idempotently), then runs this script

What validates what:
  every *.yaml under deploy/    YAML syntax, and no duplicate key (PyYAML alone keeps the last one silently)
  compose.yaml                  the compose-spec JSON schema (vendored by check-jsonschema); references
                                (depends_on, volumes, bind mounts, build context); every ${VAR} without a
                                default is listed in env.example; dsar containers hardened (read-only,
                                no capabilities, non-root, no published port); its topics are the manifests'
  Dockerfile                    hadolint; structure (multi-stage from python:3.11-slim, non-root USER,
                                HEALTHCHECK, no secret-named ENV/ARG, no extras installed, COPY sources exist
                                and are let through Dockerfile.dockerignore)
  shell scripts                 shellcheck
  k8s base, overlays/dev, prod  rendered by `kubectl kustomize` (or `kustomize build`); every object against
                                Kubernetes' own schemas (kubernetes-validate, strict: unknown fields fail) for
                                the oldest and newest Kubernetes versions supported; KafkaTopic and KafkaUser
                                against Strimzi's CRD schemas (@kubernetes-models/strimzi-kafka-operator, run
                                by node) plus a strict field list; then the rules: non-root, read-only root,
                                no privilege escalation, capabilities dropped, memory limit <= 256Mi, grpc
                                probes on the service, replicas, selectors that select, NetworkPolicy callers,
                                every referenced ConfigMap/Secret/key either rendered or documented as
                                external, and no Secret value but the REPLACE_ME placeholder.

Exit status: 0 when every check passed, 1 otherwise. Tools: deploy/tools/requirements.txt (Python, in
.tools/deploy-venv) and deploy/tools/package.json (node, in .tools/deploy-node).
"""

import argparse
import base64
import importlib.resources
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser

Doc = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = {"base": "k8s/base", "dev": "k8s/overlays/dev", "prod": "k8s/overlays/prod"}
# The oldest Kubernetes minor still in upstream support when this was written, and the newest schema shipped.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
MEMORY_LIMIT_BYTES = 256 * 2**20
MIN_SERVICE_REPLICAS = {"base": 2, "dev": 1, "prod": 2}
PLACEHOLDER = "REPLACE_ME"
SYSTEMS = ("policy", "claims", "crm", "recruitment", "analytics")
TOPICS = frozenset(
    {"dsar.results", "dsar.heartbeats", "dsar.deadletter", *(f"dsar.commands.{system}" for system in SYSTEMS)}
)
PARTITIONS = 6
# Secrets the deployer provides (deploy/README.md, "Secrets"), with the keys the manifests read.
DEPLOYER_SECRETS: Mapping[str, frozenset[str]] = {
    "dsar-service-secrets": frozenset({"master-key", "database-url"}),
    "dsar-connector-keys": frozenset(SYSTEMS),
    "dsar-source-credentials": frozenset(f"{system}-url" for system in SYSTEMS),
    "dsar-tls": frozenset({"tls.crt", "tls.key", "ca.crt"}),
    "dsar-authz": frozenset({"policy.toml"}),
}
# Secrets Strimzi makes: one per KafkaUser (key `password`) and the cluster CA's certificate.
STRIMZI_CA_SECRET = "dsar-kafka-cluster-ca-cert"
STRIMZI_SPEC_FIELDS = {
    "KafkaTopic": {"topicName", "partitions", "replicas", "config"},
    "KafkaUser": {"authentication", "authorization", "quotas", "template"},
}
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?[^}]*\}|(?P<other>.))")


# --- reporting ----------------------------------------------------------------------------------------


@dataclass
class Report:
    """Prints one line per check and remembers the failures."""

    passed: int = 0
    failed: list[str] = field(default_factory=list)

    def check(self, what: str, problems: Iterable[str]) -> None:
        found = list(problems)
        if found:
            self.failed.append(what)
            print(f"FAIL  {what}")
            for problem in found:
                print(f"        {problem}")
        else:
            self.passed += 1
            print(f"ok    {what}")


# --- YAML -----------------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (merge keys, `<<`, may still be overridden)."""


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_all(text: str) -> list[Any]:
    """Every non-empty document of a YAML stream, strictly."""
    return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc is not None]


def yaml_problems(path: Path) -> list[str]:
    try:
        load_all(path.read_text())
    except yaml.YAMLError as error:
        return [str(error).replace("\n", " ")]
    return []


def schema_problems(schema: Mapping[str, Any], instance: Any) -> list[str]:
    """Every JSON-schema violation, as `path: message`."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}" for error in errors]


# --- compose --------------------------------------------------------------------------------------------


def compose_schema() -> Any:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def compose_reference_problems(compose: Doc, base: Path) -> Iterator[str]:
    services: dict[str, Doc] = compose.get("services", {})
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or []
        for target in depends if isinstance(depends, list) else depends.keys():
            if target not in services:
                yield f"{name}: depends_on names {target!r}, which is not a service"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                if not (base / source).exists():
                    yield f"{name}: bind mount source {source} does not exist"
            elif source and source not in declared_volumes:
                yield f"{name}: volume {source!r} is not declared under volumes:"
        build = service.get("build")
        if isinstance(build, dict):
            context = base / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                yield f"{name}: build dockerfile {build.get('dockerfile')} not found in {build.get('context')}"


def compose_interpolation_problems(text: str, documented: set[str]) -> Iterator[str]:
    for match in INTERPOLATION.finditer(text):
        if match["other"] is not None:
            if match["other"] != "$":
                yield f"bare ${match['other']}… : write ${{NAME}} or escape as $$"
            continue
        has_default = match["op"] in ("-", ":-", "+", ":+")
        if not has_default and match["name"] not in documented:
            yield f"${{{match['name']}}} has no default and is not listed in deploy/env.example"


def documented_variables(env_example: Path) -> set[str]:
    names = set()
    for line in env_example.read_text().splitlines():
        line = line.lstrip("# ").strip()
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            names.add(line.split("=", 1)[0])
    return names


def compose_hardening_problems(compose: Doc) -> Iterator[str]:
    if not any((s.get("build") or {}).get("dockerfile") for s in compose.get("services", {}).values()):
        yield "no service is built from deploy/Dockerfile"
    for name, service in compose.get("services", {}).items():
        if (service.get("build") or {}).get("dockerfile") != "deploy/Dockerfile":
            continue
        if service.get("read_only") is not True:
            yield f"{name}: read_only is not true"
        if "ALL" not in (service.get("cap_drop") or []):
            yield f"{name}: cap_drop lacks ALL"
        if str(service.get("user", "")).split(":")[0] in ("", "0", "root"):
            yield f"{name}: runs as root (set user:)"
        if service.get("ports"):
            yield f"{name}: publishes ports; the service binds loopback only until TLS lands"


def compose_topics(compose: Doc) -> set[str]:
    job = compose.get("services", {}).get("kafka-topics", {})
    return set(str(job.get("environment", {}).get("TOPICS", "")).split())


# --- Dockerfile -----------------------------------------------------------------------------------------


def dockerfile_problems(path: Path, ignore_file: Path) -> Iterator[str]:
    parser = DockerfileParser(fileobj=path.open("rb"))
    structure: list[Doc] = parser.structure
    args: dict[str, str] = {}
    stages: list[list[Doc]] = []
    for instruction in structure:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
        elif kind == "ARG" and "=" in value:
            name, default = value.split("=", 1)
            args[name.strip()] = default.strip().strip('"')
        if kind in ("ENV", "ARG") and SECRET_NAME.search(value.split("=")[0]):
            yield f"line {instruction['startline'] + 1}: {kind} {value.split('=')[0]} looks like a secret"
        if kind == "RUN" and re.search(r"\[(dev|stack)\]", value):
            yield f"line {instruction['startline'] + 1}: installs development extras"
    if len(stages) < 2:
        yield "not multi-stage: build the wheel in one stage, run it in another"
    for stage in stages:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), stage[0]["value"].split()[0])
        if not image.startswith("python:3.11-slim"):
            yield f"stage from {image}: expected python:3.11-slim"
    final = stages[-1] if stages else []
    users = [i["value"].split(":")[0].strip() for i in final if i["instruction"] == "USER"]
    if not users or users[-1] in ("0", "root"):
        yield "the final stage does not switch to a non-root USER"
    for kind in ("HEALTHCHECK", "ENTRYPOINT"):
        if not any(i["instruction"] == kind for i in final):
            yield f"the final stage has no {kind}"
    allowed = [line[1:].rstrip("/") for line in ignore_file.read_text().splitlines() if line.startswith("!")]
    for instruction in structure:
        if instruction["instruction"] not in ("COPY", "ADD"):
            continue
        words = [word for word in instruction["value"].split() if not word.startswith("--")]
        if instruction["value"].startswith("--from") or "--from=" in instruction["value"]:
            continue
        for source in words[:-1]:
            if not (ROOT / source).exists():
                yield f"line {instruction['startline'] + 1}: COPY source {source} does not exist"
            elif source.rstrip("/") not in allowed:
                yield f"line {instruction['startline'] + 1}: {source} is excluded by {ignore_file.name}"


def tool_problems(command: list[str]) -> list[str]:
    """Run a linter; its output lines are the problems when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if result.returncode == 0:
        return []
    return (result.stdout + result.stderr).strip().splitlines() or [f"exit status {result.returncode}"]


# --- Kubernetes -----------------------------------------------------------------------------------------


def render(kustomize: list[str], directory: Path) -> list[Doc]:
    result = subprocess.run([*kustomize, str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip() or f"exit status {result.returncode}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class RenderError(Exception):
    """kustomize refused a kustomization; the message is its own."""


def label(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def kubernetes_schema_problems(docs: list[Doc]) -> Iterator[str]:
    for doc in docs:
        if str(doc.get("apiVersion", "")).startswith("kafka.strimzi.io/"):
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(map(str, error.path))
                yield f"{label(doc)} (Kubernetes {version[:-2]}): {path}: {error.message}"
            except kubernetes_validate.SchemaNotFoundError:
                yield f"{label(doc)}: no Kubernetes {version[:-2]} schema for {doc.get('apiVersion')}"


def strimzi_problems(docs: list[Doc], node_dir: Path) -> Iterator[str]:
    resources = [doc for doc in docs if str(doc.get("apiVersion", "")).startswith("kafka.strimzi.io/")]
    if not resources:
        return
    shutil.copyfile(Path(__file__).with_name("strimzi.mjs"), node_dir / "strimzi.mjs")
    result = subprocess.run(
        ["node", "strimzi.mjs"], input=json.dumps(resources), capture_output=True, text=True, cwd=node_dir, check=False
    )
    if result.returncode != 0:
        yield f"the Strimzi validator failed: {result.stderr.strip()[-500:]}"
        return
    for outcome in json.loads(result.stdout):
        for error in outcome["errors"]:
            yield f"{outcome['kind']}/{outcome['name']}: {error}"
    for doc in resources:
        unknown = set(doc.get("spec", {})) - STRIMZI_SPEC_FIELDS.get(doc["kind"], set())
        if unknown:
            yield f"{label(doc)}: unknown spec field(s) {', '.join(sorted(unknown))}"


def memory_bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?|k)?", str(quantity))
    if not match:
        return float("inf")
    return float(match[1]) * units.get(match[2] or "", 1)


def pod_spec_problems(doc: Doc) -> Iterator[str]:
    pod = doc["spec"]["template"]["spec"]
    name = label(doc)
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        yield f"{name}: pod securityContext.runAsNonRoot is not true"
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield f"{name}: pod seccompProfile is not RuntimeDefault"
    if pod.get("automountServiceAccountToken") is not False:
        yield f"{name}: mounts a service account token it does not need"
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        where = f"{name} container {container['name']}"
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            yield f"{where}: readOnlyRootFilesystem is not true"
        if security.get("allowPrivilegeEscalation") is not False:
            yield f"{where}: allowPrivilegeEscalation is not false"
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            yield f"{where}: capabilities are not all dropped"
        resources = container.get("resources", {})
        limit = resources.get("limits", {}).get("memory")
        if limit is None or memory_bytes(limit) > MEMORY_LIMIT_BYTES:
            yield f"{where}: memory limit {limit} (expected at most 256Mi)"
        request = resources.get("requests", {}).get("memory")
        if request is None or (limit is not None and memory_bytes(request) > memory_bytes(limit)):
            yield f"{where}: memory request {request} missing or above the limit"
        image = str(container.get("image", ""))
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            yield f"{where}: image {image} is not pinned to a tag or digest"


def service_problems(docs: list[Doc], variant: str) -> Iterator[str]:
    services = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "dsar-service"]
    if len(services) != 1:
        yield "expected one Deployment dsar-service"
        return
    deployment = services[0]
    if deployment["spec"].get("replicas", 1) < MIN_SERVICE_REPLICAS[variant]:
        yield f"dsar-service has fewer than {MIN_SERVICE_REPLICAS[variant]} replicas"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc = container.get(probe, {}).get("grpc")
        if grpc is None:
            yield f"dsar-service has no grpc {probe}"
        elif grpc["port"] not in ports.values():
            yield f"dsar-service {probe} probes port {grpc['port']}, which the container does not declare"
    connectors = {
        d["metadata"]["name"].removeprefix("dsar-connector-")
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("dsar-connector-")
    }
    if connectors != set(SYSTEMS):
        yield f"connector Deployments {sorted(connectors)}, expected {sorted(SYSTEMS)}"
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"].startswith("dsar-connector-"):
            system = doc["metadata"]["name"].removeprefix("dsar-connector-")
            args = doc["spec"]["template"]["spec"]["containers"][0].get("args", [])
            if args != ["connectors", "run", "--system", system]:
                yield f"{label(doc)} runs {args}"


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def selector_problems(docs: list[Doc]) -> Iterator[str]:
    pods = [d["spec"]["template"]["metadata"].get("labels", {}) for d in docs if d["kind"] == "Deployment"]
    for doc in docs:
        kind, spec = doc["kind"], doc.get("spec", {})
        if kind == "Deployment" and not matches(
            spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]
        ):
            yield f"{label(doc)}: selector does not match its own pod template"
        selector = {
            "Service": spec.get("selector"),
            "PodDisruptionBudget": spec.get("selector", {}).get("matchLabels"),
            "NetworkPolicy": spec.get("podSelector", {}).get("matchLabels"),
        }.get(kind)
        if selector is not None and not any(matches(selector, pod) for pod in pods):
            yield f"{label(doc)}: selector {selector} selects no pod"
        if kind == "NetworkPolicy":
            for rule in spec.get("ingress", []):
                for peer in rule.get("from", []):
                    callers = peer.get("podSelector", {}).get("matchLabels")
                    if callers is not None and callers != {"dsar.io/caller": "true"}:
                        yield f"{label(doc)}: caller selector {callers} (expected dsar.io/caller=true only)"


def reference_problems(docs: list[Doc], variant: str) -> Iterator[str]:
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    strimzi = {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"} | {STRIMZI_CA_SECRET}
    used: dict[str, set[str]] = {}
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                    yield f"{label(doc)}: ConfigMap {source['configMapRef']['name']} is not rendered"
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    used.setdefault(ref["name"], set()).add(ref["key"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"].get("items", [])}
                used.setdefault(volume["secret"]["secretName"], set()).update(keys)
    for name, keys in sorted(used.items()):
        if name in strimzi:
            continue
        if name not in DEPLOYER_SECRETS:
            yield f"Secret {name} is referenced but neither documented nor made by Strimzi"
            continue
        if not keys <= DEPLOYER_SECRETS[name]:
            yield f"Secret {name}: keys {sorted(keys - DEPLOYER_SECRETS[name])} are not documented"
    if variant == "dev":
        for name, expected in DEPLOYER_SECRETS.items():
            if name not in secrets:
                yield f"Secret {name} has no placeholder in the dev overlay"
            elif set(secrets[name].get("data", {})) != expected:
                yield f"Secret {name}: keys {sorted(secrets[name].get('data', {}))}, expected {sorted(expected)}"
    elif secrets:
        yield f"{variant} defines Secrets {sorted(secrets)}: they come from the cluster's secret manager"
    for name, secret in secrets.items():
        values = {**secret.get("stringData", {})}
        values.update({k: base64.b64decode(v).decode(errors="replace") for k, v in secret.get("data", {}).items()})
        for key, value in values.items():
            if value != PLACEHOLDER:
                yield f"Secret {name} key {key} holds a value, not the {PLACEHOLDER} placeholder"


def topic_problems(docs: list[Doc]) -> Iterator[str]:
    topics = {d["spec"].get("topicName", d["metadata"]["name"]): d for d in docs if d["kind"] == "KafkaTopic"}
    if set(topics) != TOPICS:
        yield f"KafkaTopics {sorted(topics)}, expected {sorted(TOPICS)}"
    for name, doc in topics.items():
        if doc["spec"].get("partitions") != PARTITIONS:
            yield f"KafkaTopic {name}: partitions {doc['spec'].get('partitions')!r}, expected {PARTITIONS}"
        replicas, isr = doc["spec"].get("replicas", 1), int(doc["spec"].get("config", {}).get("min.insync.replicas", 1))
        if isr > replicas:
            yield f"KafkaTopic {name}: min.insync.replicas {isr} > replicas {replicas}: nothing could be written"
        if "strimzi.io/cluster" not in doc["metadata"].get("labels", {}):
            yield f"KafkaTopic {name}: no strimzi.io/cluster label"
    for user in (d for d in docs if d["kind"] == "KafkaUser"):
        for acl in user["spec"].get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            if resource["type"] != "topic":
                continue
            pattern = resource.get("patternType", "literal")
            known = (
                any(t.startswith(resource["name"]) for t in TOPICS)
                if pattern == "prefix"
                else resource["name"] in TOPICS
            )
            if not known:
                yield f"{label(user)}: ACL on topic {resource['name']} ({pattern}), which is not a dsar topic"
            if {"Create", "All"} & set(acl.get("operations", [])):
                yield f"{label(user)}: may create topics; topics are declared, not created by clients"


# --- main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate deploy/: compose, Dockerfile, Kubernetes manifests.")
    parser.add_argument("--node-dir", type=Path, required=True, help="where the node tools are installed")
    parser.add_argument(
        "--kustomize", default="kubectl kustomize", help="the render command (a kustomization dir follows)"
    )
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    report = Report()

    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        report.check(f"YAML {path.relative_to(ROOT)}", yaml_problems(path))

    compose_path = DEPLOY / "compose.yaml"
    compose_text = compose_path.read_text()
    compose: Doc = load_all(compose_text)[0]
    report.check("compose.yaml: compose-spec schema", schema_problems(compose_schema(), compose))
    report.check("compose.yaml: references", compose_reference_problems(compose, DEPLOY))
    documented = documented_variables(DEPLOY / "env.example")
    report.check("compose.yaml: ${VAR} listed in env.example", compose_interpolation_problems(compose_text, documented))
    report.check("compose.yaml: dsar containers hardened", compose_hardening_problems(compose))
    report.check(
        "compose.yaml: topics",
        [] if compose_topics(compose) == TOPICS else [f"{sorted(compose_topics(compose))} != {sorted(TOPICS)}"],
    )

    dockerfile = DEPLOY / "Dockerfile"
    report.check("Dockerfile: hadolint", tool_problems([str(bin_dir / "hadolint"), "--no-color", str(dockerfile)]))
    report.check("Dockerfile: structure", dockerfile_problems(dockerfile, DEPLOY / "Dockerfile.dockerignore"))
    scripts = [DEPLOY / "make-env", *sorted((DEPLOY / "compose").glob("*.sh")), ROOT / "scripts" / "validate-deploy"]
    report.check("shell scripts: shellcheck", tool_problems([str(bin_dir / "shellcheck"), *map(str, scripts)]))

    kustomize = shlex.split(args.kustomize)
    for variant, directory in KUSTOMIZATIONS.items():
        where = f"k8s {variant}"
        try:
            docs = render(kustomize, DEPLOY / directory)
        except RenderError as error:
            report.check(f"{where}: kustomize build", [str(error)])
            continue
        report.check(f"{where}: kustomize build ({len(docs)} objects)", [])
        report.check(f"{where}: Kubernetes schemas {', '.join(KUBERNETES_VERSIONS)}", kubernetes_schema_problems(docs))
        report.check(f"{where}: Strimzi CRD schemas", strimzi_problems(docs, args.node_dir))
        report.check(
            f"{where}: pod hardening and resources",
            (p for d in docs if d["kind"] == "Deployment" for p in pod_spec_problems(d)),
        )
        report.check(f"{where}: service and connectors", service_problems(docs, variant))
        report.check(f"{where}: selectors", selector_problems(docs))
        report.check(f"{where}: ConfigMaps and Secrets", reference_problems(docs, variant))
        report.check(f"{where}: topics and ACLs", topic_problems(docs))

    print(f"validate-deploy: {report.passed} checks passed, {len(report.failed)} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
