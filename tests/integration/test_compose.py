"""Static checks of the container stack: docker-compose.yml, Dockerfile, Prometheus and Grafana files, and the
Kafka security of docker-compose (SASL_SSL listeners, a user per service, ACLs as topics.yaml says).

No Docker engine and no network: the files are parsed and cross-checked against the code they run
(core.settings.Settings, the modules and console script they start, topics.yaml); scripts/kafka-secrets runs
into a scratch directory.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.devstack import free_port
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "grafana"
KAFKA_INIT_SCRIPT = ROOT / "scripts" / "kafka" / "init.sh"
KAFKA_SECRETS_SCRIPT = ROOT / "scripts" / "kafka-secrets"
GENERATED_SECRETS = ("./secrets/",)   # made by scripts/kafka-secrets, never committed

KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
EXPECTED_SERVICES = {*KAFKA_NODES, "postgres", "redis", "mongo", "schema-registry", "prometheus", "grafana", "setup",
                     "worker", "projector",
                     "api", "lag-exporter", "notifier", "smtp-sim", "sms-sim", "kafka-init"}
ONE_SHOT_SERVICES = {"setup", "kafka-init"}
BANK_VAR = re.compile(r"\bBANK_[A-Z0-9_]+\b")
# Generous: a worker only imports its modules before it checks its files, but the test machines are busy.
WORKER_EXIT_TIMEOUT_S = 120


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _host_ports(service: dict[str, Any]) -> list[int]:
    """Published host ports, from short ("[ip:]host:container[/proto]") and long syntax."""
    published: list[int] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                published.append(int(port["published"]))
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) >= 2:  # a lone container port publishes a random host port: not a clash
            published.append(int(parts[-2]))
    return published


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- docker-compose.yml --------------------------------------------------------------------------

def test_compose_loads_with_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert EXPECTED_SERVICES <= set(services)


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (a build needs an image: name:tag too)"
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{name}: image {image!r} has no tag"
        tag = last.split(":", 1)[1]
        assert tag != "latest" and "latest" not in tag.split("-"), f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d+\.\d+", tag), f"{name}: tag {tag!r} of {image!r} is not a version"


def test_own_image_tag_follows_the_project_version(services: dict[str, dict[str, Any]]) -> None:
    version = _pyproject()["project"]["version"]
    built = {name: s["image"] for name, s in services.items() if "build" in s}
    assert {"setup", "worker", "projector", "api", "lag-exporter"} <= set(built)
    assert set(built.values()) == {f"bankstream:{version}"}, built


def test_host_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for port in _host_ports(service):
            assert port not in seen, f"host port {port} published by both {seen[port]} and {name}"
            seen[port] = name


def test_scalable_worker_publishes_no_host_port_and_has_no_fixed_name(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert not worker.get("ports"), "`--scale worker=3` would clash on a published host port"
    assert "container_name" not in worker and "hostname" not in worker


def test_every_bank_variable_is_a_settings_field() -> None:
    """Every BANK_* name anywhere in the compose file or Dockerfile (env keys, commands,
    ${...} interpolations) is a field of core.settings.Settings."""
    fields = set(Settings.model_fields)
    used = set(BANK_VAR.findall(COMPOSE_FILE.read_text())) | set(BANK_VAR.findall(DOCKERFILE.read_text()))
    assert used, "no BANK_* variables found at all"
    unknown = sorted(var for var in used if var.removeprefix("BANK_").lower() not in fields)
    assert not unknown, f"not fields of core.settings.Settings: {unknown}"


def test_app_services_are_wired_to_the_stack(services: dict[str, dict[str, Any]]) -> None:
    for name in ("setup", "worker", "projector", "api", "lag-exporter", "notifier"):
        env = _environment(services[name])
        bootstrap = [server.split(":")[0] for server in env["BANK_KAFKA_BOOTSTRAP"].split(",")]
        assert sorted(bootstrap) == sorted(KAFKA_NODES), f"{name}: bootstrap must list every broker"
        assert int(env["BANK_TOPIC_REPLICATION"]) == len(KAFKA_NODES), name
        assert "@postgres:" in env["BANK_PG_DSN"], name
        assert env["BANK_REDIS_URL"].startswith("redis://redis:"), name
        assert env["BANK_MONGO_URL"].startswith("mongodb://mongo:"), name


def test_worker_id_is_derived_per_replica(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "BANK_WORKER_ID" not in _environment(worker), "a fixed id would be shared by every replica"
    script = " ".join(_command(worker))
    assert re.search(r"BANK_WORKER_ID=\S*\$\$\(hostname\)", script), script
    assert "python -m streams" in script


def test_no_unescaped_shell_substitution() -> None:
    """Compose interpolates `$`: a shell `$(...)` must be written `$$(...)`."""
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"(?<!\$)\$\(", text)


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        long_running = name not in ONE_SHOT_SERVICES
        if long_running:
            assert service.get("healthcheck", {}).get("test"), f"{name}: long-running service without a healthcheck"
        for dep, condition in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), f"{name} waits for {dep} healthy: no healthcheck"
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT_SERVICES, f"{name} waits for {dep} to exit, but {dep} is long-running"
                assert services[dep].get("restart", "no") == "no", f"{dep} is one-shot, it must not restart"


def test_app_waits_for_setup(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "api"):
        assert _depends_on(services[name]).get("setup") == "service_completed_successfully", name
    assert _depends_on(services["setup"]) == {**dict.fromkeys(KAFKA_NODES, "service_healthy"),
                                              "postgres": "service_healthy", "schema-registry": "service_healthy",
                                              "kafka-init": "service_completed_successfully"}


def test_app_services_wait_for_every_broker(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "BANK_KAFKA_BOOTSTRAP" in _environment(service):
            deps = _depends_on(service)
            assert all(deps.get(node) == "service_healthy" for node in KAFKA_NODES), f"{name}: {deps}"


def test_setup_applies_topics_and_migrates(services: dict[str, dict[str, Any]]) -> None:
    script = " ".join(_command(services["setup"]))
    assert "bank topics apply" in script and "bank migrate" in script
    assert "bank schemas release --registry-only --registry http://schema-registry:8081" in script


def test_bank_console_script_has_the_setup_commands() -> None:
    target = _pyproject()["project"]["scripts"]["bank"]
    module, _, attr = target.partition(":")
    assert _module_file(module), f"console script `bank` -> {module}, which does not exist"
    import importlib

    import typer.main

    cli = typer.main.get_command(getattr(importlib.import_module(module), attr))
    assert "migrate" in cli.commands
    assert "apply" in cli.commands["topics"].commands
    assert "release" in cli.commands["schemas"].commands


def test_kafka_has_enough_brokers_for_topic_replication(services: dict[str, dict[str, Any]]) -> None:
    from core.topics import parse_registry, with_replication

    app_env = _environment(services["setup"])
    registry = parse_registry((ROOT / "topics.yaml").read_text())
    effective = with_replication(registry, Settings(topic_replication=app_env["BANK_TOPIC_REPLICATION"]).topic_replication)
    brokers = [name for name, s in services.items()
               if s["image"].startswith("apache/kafka:") and name not in ONE_SHOT_SERVICES]
    assert sorted(brokers) == sorted(KAFKA_NODES)
    assert {spec.replication for spec in effective.values()} == {len(brokers)}
    for name in brokers:
        env = _environment(services[name])
        assert env.get("KAFKA_PROCESS_ROLES"), "KRaft mode: process roles must be set"
        assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false", "topics come from topics.yaml via setup"
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) <= len(brokers)
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) <= len(brokers)


def test_kafka_is_a_three_node_quorum_that_survives_one_loss(services: dict[str, dict[str, Any]]) -> None:
    """Three combined broker+controller nodes, one cluster, replication 3 and min ISR 2 everywhere."""
    envs = {name: _environment(services[name]) for name in KAFKA_NODES}
    node_ids = {name: env["KAFKA_NODE_ID"] for name, env in envs.items()}
    assert len(set(node_ids.values())) == len(KAFKA_NODES), node_ids
    voters = {f"{node_ids[name]}@{name}:9093" for name in KAFKA_NODES}
    for name, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters, name
        for key in ("KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
            assert int(env[key]) == 3, f"{name}: {key}"
        for key in ("KAFKA_MIN_INSYNC_REPLICAS", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
            assert int(env[key]) == 2, f"{name}: {key}"
        advertised = dict(listener.split("://", 1) for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
        assert advertised["CLIENT"] == f"{name}:9092", name
        assert advertised["BROKER"] == f"{name}:9094", name
        external_port = int(advertised["EXTERNAL"].rsplit(":", 1)[1])
        assert services[name]["ports"] == [f"127.0.0.1:{external_port}:{external_port}"], name
        assert f"EXTERNAL://:{external_port}" in env["KAFKA_LISTENERS"].split(","), name
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1, "one cluster id for every node"
    volumes = {str(v).split(":", 1)[0] for name in KAFKA_NODES for v in services[name]["volumes"]
               if isinstance(v, str) and not v.startswith(".")}
    assert len(volumes) == len(KAFKA_NODES), "a data volume per node"


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    """Except the generated secrets, which scripts/kafka-secrets makes (test_kafka_secrets_are_what_compose_mounts)."""
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith(GENERATED_SECRETS):
                continue
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"


# --- Kafka security ------------------------------------------------------------------------------

# Who each principal of scripts/kafka/init.sh is in topics.yaml's producers and consumers. A principal not here
# (setup, lag-exporter, schema-registry) may neither read nor write any of topics.yaml's topics.
PRINCIPAL_ROLES = {
    "api": r"^(every )?API\b",
    "ledger": r"\b(ledger agent|risk agent|transfer saga)\b",
    "projector": r"\bprojections?\b",
    "notifier": r"^notifier\b",
    "scheduler": r"\b(standing-order scheduler|loan servicer|close-of-business job)\b",
    "gateway": r"\bpayment gateway\b",
}
# The compose service each principal runs as (schema-registry logs in from its own JAAS file).
SERVICE_PRINCIPALS = {"api": "api", "worker": "ledger", "projector": "projector", "notifier": "notifier",
                      "scheduler": "scheduler", "gateway": "gateway", "setup": "setup", "lag-exporter": "lag-exporter"}
PASSWORD_VARIABLE = re.compile(r"^\$\{(KAFKA_[A-Z_]+_PASSWORD):\?[^}]+\}$")


@dataclass(frozen=True)
class Grant:
    """One `allow` line of scripts/kafka/init.sh."""

    principal: str
    operations: frozenset[str]
    kind: str                # topic, group, transactional-id, cluster
    names: tuple[str, ...]
    prefixed: bool

    def allows(self, principal: str, operation: str, kind: str, name: str) -> bool:
        return (self.principal == principal and self.kind == kind and bool({operation, "All"} & self.operations)
                and any(name.startswith(n) if self.prefixed else name == n for n in self.names))


def _init_script() -> str:
    return KAFKA_INIT_SCRIPT.read_text().replace("\\\n", " ")


@pytest.fixture(scope="module")
def grants() -> list[Grant]:
    found = []
    for line in _init_script().splitlines():
        if match := re.match(r"^allow (\S+) (\S+) (\S+)(.*)$", line):
            principal, operations, kind, names = match.groups()
            found.append(Grant(principal, frozenset(operations.split(",")), kind.removesuffix("-prefix"),
                               tuple(names.split()), kind.endswith("-prefix")))
    assert found, f"no allow lines in {KAFKA_INIT_SCRIPT}"
    return found


@pytest.fixture(scope="module")
def principals() -> list[str]:
    match = re.search(r'^for principal in ([^;]+); do\s+user "\$principal"', _init_script(), re.MULTILINE)
    assert match, "scripts/kafka/init.sh makes no users"
    return match.group(1).split()


def _topics_registry() -> dict[str, Any]:
    from core.topics import parse_registry

    return parse_registry((ROOT / "topics.yaml").read_text())


def _listeners(env: dict[str, str]) -> dict[str, str]:
    return dict(entry.split(":", 1) for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))


def test_every_kafka_listener_is_sasl_ssl_and_acls_deny_by_default(services: dict[str, dict[str, Any]]) -> None:
    for name in KAFKA_NODES:
        env = _environment(services[name])
        assert set(_listeners(env).values()) == {"SASL_SSL"}, f"{name}: {env['KAFKA_LISTENER_SECURITY_PROTOCOL_MAP']}"
        listening = {entry.split("://")[0]: int(entry.rsplit(":", 1)[1]) for entry in env["KAFKA_LISTENERS"].split(",")}
        assert set(listening) == set(_listeners(env)), name
        assert listening["CLIENT"] == 9092 and listening["BROKER"] == 9094, name
        for listener, mechanism in {"CLIENT": "SCRAM-SHA-512", "EXTERNAL": "SCRAM-SHA-512", "BROKER": "PLAIN",
                                    "CONTROLLER": "PLAIN"}.items():
            assert env[f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS"] == mechanism, f"{name}: {listener}"
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "BROKER"
        assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "PLAIN"
        assert env["KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL"] == "PLAIN"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert env["KAFKA_SUPER_USERS"] == "User:admin", "the brokers' own user is the only super user"
        # the image drops KAFKA_* values holding '=' (a JAAS configuration): the login file comes from broker.sh
        assert not [key for key, value in env.items() if key.startswith("KAFKA_") and "=" in value], name
        assert _command(services[name]) == ["bash", "/opt/bankstream/kafka/broker.sh"]
        stores = {env["KAFKA_SSL_KEYSTORE_LOCATION"], env["KAFKA_SSL_TRUSTSTORE_LOCATION"]}
        assert stores <= _mount_targets(services[name]), name
        keystore = [v["source"] for v in services[name]["volumes"]
                    if isinstance(v, dict) and v["target"] == env["KAFKA_SSL_KEYSTORE_LOCATION"]]
        assert keystore == [f"./secrets/kafka/{name}.p12"], f"{name}: its own keystore"


def test_every_kafka_client_service_gets_its_own_credentials_by_environment(services: dict[str, dict[str, Any]],
                                                                            tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("")
    users: dict[str, str] = {}
    for name, service in services.items():
        env = _environment(service)
        if "BANK_KAFKA_BOOTSTRAP" not in env:
            continue
        assert env["BANK_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["BANK_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        user = env.get("BANK_KAFKA_SASL_USERNAME")
        assert user == SERVICE_PRINCIPALS.get(name), f"{name}: Kafka user {user!r}"
        assert user not in users.values(), f"{name} shares Kafka user {user} with another service"
        users[name] = user
        password = PASSWORD_VARIABLE.match(env.get("BANK_KAFKA_SASL_PASSWORD", ""))
        assert password and password.group(1) == f"KAFKA_{user.upper().replace('-', '_')}_PASSWORD", \
            f"{name}: BANK_KAFKA_SASL_PASSWORD must come from .env (scripts/kafka-secrets)"
        assert env["BANK_KAFKA_SSL_CAFILE"] in _mount_targets(service), f"{name}: the Kafka CA is not mounted"
        # the settings a process builds from this environment (the CA file stands in) are valid
        settings = Settings(**{key.removeprefix("BANK_").lower(): value for key, value in env.items()
                               if key.startswith("BANK_KAFKA_")} | {"kafka_ssl_cafile": ca_file})
        assert settings.kafka_sasl_username == user
    assert set(users) == set(SERVICE_PRINCIPALS)


def test_every_principal_has_a_user_a_password_and_acls(services: dict[str, dict[str, Any]], principals: list[str],
                                                        grants: list[Grant]) -> None:
    assert set(SERVICE_PRINCIPALS.values()) | {"schema-registry"} == set(principals)
    init_env = _environment(services["kafka-init"])
    for principal in principals:
        variable = f"{principal.upper().replace('-', '_')}_PASSWORD"
        password = PASSWORD_VARIABLE.match(init_env.get(variable, ""))
        assert password and password.group(1) == f"KAFKA_{variable}", f"kafka-init: {variable}"
        assert any(grant.principal == principal for grant in grants), f"no ACL for {principal}"
    assert {grant.principal for grant in grants} <= set(principals), "an ACL for a principal with no user"
    registry_env = _environment(services["schema-registry"])
    assert PASSWORD_VARIABLE.match(registry_env["SASL_PASSWORD"]).group(1) == "KAFKA_SCHEMA_REGISTRY_PASSWORD"
    assert registry_env["SCHEMA_REGISTRY_KAFKASTORE_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert 'username="schema-registry"' in (ROOT / "scripts" / "kafka" / "schema-registry.sh").read_text()


def test_every_user_of_kafka_waits_for_its_user(services: dict[str, dict[str, Any]]) -> None:
    """Kafka's users and ACLs exist before anything logs in: kafka-init ran, or `setup`, which waits for it."""
    for name, service in services.items():
        env = _environment(service)
        if "BANK_KAFKA_BOOTSTRAP" in env or name == "schema-registry":
            deps = _depends_on(service)
            assert "service_completed_successfully" in {deps.get("kafka-init"), deps.get("setup")}, name
    assert _depends_on(services["kafka-init"]) == dict.fromkeys(KAFKA_NODES, "service_healthy")


def test_acls_let_each_principal_write_and_read_what_topics_yaml_says_and_nothing_else(
        principals: list[str], grants: list[Grant]) -> None:
    registry = _topics_registry()
    for principal in principals:
        role = re.compile(PRINCIPAL_ROLES.get(principal, r"(?!)"))
        for operation, attribute in (("Write", "producers"), ("Read", "consumers")):
            said = {topic for topic, spec in registry.items()
                    if any(role.search(who) for who in getattr(spec, attribute))}
            allowed = {topic for topic in registry
                       if any(grant.allows(principal, operation, "topic", topic) for grant in grants)}
            assert allowed == said, (f"{principal} may {operation} {sorted(allowed - said)} (not in topics.yaml's "
                                     f"{attribute}) and not {sorted(said - allowed)}")


def test_acls_cover_every_consumer_group_and_transaction(grants: list[Grant]) -> None:
    from core.audit import AUDIT_TRAIL_GROUP
    from core.notifications import NOTIFIER_GROUP
    from core.readmodel import PROJECTIONS, consumer_group
    from gateway.connector import GROUP as GATEWAY_GROUP

    app_id = Settings().app_id
    groups = {Settings().worker_group: "ledger", AUDIT_TRAIL_GROUP: "projector", NOTIFIER_GROUP: "notifier",
              GATEWAY_GROUP: "gateway"} | {consumer_group(name): "projector" for name in PROJECTIONS}
    for group, principal in groups.items():
        assert any(grant.allows(principal, "Read", "group", group) for grant in grants), f"{principal}: group {group}"
        readers = {grant.principal for grant in grants if grant.allows(grant.principal, "Read", "group", group)}
        assert readers == {principal}, f"group {group} is read by {readers}"
    # a new workers' group starts where Faust's group (the app id) left off: it reads that group's offsets
    assert any(grant.allows("ledger", "Describe", "group", app_id) for grant in grants)
    # exactly_once: each agent's transactional id is <app id>-<agent>-<worker id> (streams/consumer.py)
    assert any(grant.allows("ledger", "Write", "transactional-id", f"{app_id}-ledger-ledger-1") for grant in grants)
    # the engine's tables read and write their changelogs
    assert any(grant.allows("ledger", "Write", "topic", f"{app_id}-accounts-changelog") for grant in grants)
    assert any(grant.allows("ledger", "Read", "topic", f"{app_id}-accounts-changelog") for grant in grants)
    assert any(grant.allows("setup", "Create", "topic", topic) for topic in _topics_registry() for grant in grants)


def test_kafka_secrets_are_what_compose_mounts_and_stay_out_of_git_and_the_image(services: dict[str, dict[str, Any]],
                                                                                tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    subprocess.run(["bash", str(KAFKA_SECRETS_SCRIPT), str(tmp_path)], check=True, capture_output=True, timeout=120)
    mounted = {volume["source"] for service in services.values() for volume in service.get("volumes") or []
               if isinstance(volume, dict) and volume["source"].startswith(GENERATED_SECRETS)}
    assert mounted, "docker-compose mounts none of the generated secrets"
    for source in mounted:
        assert (tmp_path / source).is_file(), f"scripts/kafka-secrets does not make {source}"
    env_file = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines())
    wanted = set(re.findall(r"\$\{(KAFKA_[A-Z_]+_PASSWORD):\?", COMPOSE_FILE.read_text()))
    assert wanted <= set(env_file), f"passwords compose needs that the script does not make: {wanted - set(env_file)}"
    assert all(re.fullmatch(r"[0-9a-f]{48}", env_file[name]) for name in wanted)
    made = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    subprocess.run(["bash", str(KAFKA_SECRETS_SCRIPT), str(tmp_path)], check=True, capture_output=True, timeout=120)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == made, "a second run must keep what exists"
    assert (tmp_path / ".env").read_text().count("KAFKA_API_PASSWORD=") == 1
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert {"secrets/", ".env"} <= ignored
    docker_ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {"secrets", ".env"} <= docker_ignored


def _serve_tls_once(context: ssl.SSLContext, listener: socket.socket) -> None:
    connection, _ = listener.accept()
    try:
        with context.wrap_socket(connection, server_side=True):
            pass
    except (ssl.SSLError, OSError):
        pass   # the client refused the certificate


def test_clients_verify_the_brokers_certificates_against_the_generated_ca(tmp_path: Path) -> None:
    """A TLS handshake between a broker's key and certificate (from its keystore) and the client context the
    platform builds (infra.kafka_security) from BANK_KAFKA_SSL_CAFILE: the broker's name passes, another fails."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    from infra.kafka_security import ssl_context

    subprocess.run(["bash", str(KAFKA_SECRETS_SCRIPT), str(tmp_path)], check=True, capture_output=True, timeout=120)
    env_file = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines())
    password = env_file["KAFKA_KEYSTORE_PASSWORD"]
    keystore = tmp_path / "secrets" / "kafka" / "kafka-1.p12"
    for what, out in (("-clcerts -nokeys", "cert.pem"), ("-nocerts -nodes", "key.pem")):
        subprocess.run(["openssl", "pkcs12", "-in", str(keystore), "-passin", f"pass:{password}", *what.split(),
                        "-out", str(tmp_path / out)], check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl_context(Settings(kafka_bootstrap="kafka-1:9092", kafka_security_protocol="SSL",
                                  kafka_ssl_cafile=tmp_path / "secrets" / "kafka" / "ca.crt"))
    for hostname, accepted in (("kafka-1", True), ("localhost", True), ("kafka-2", False)):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            serving = threading.Thread(target=_serve_tls_once, args=(server, listener))
            serving.start()
            try:
                with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                    if accepted:
                        client.wrap_socket(raw, server_hostname=hostname).close()
                    else:
                        with pytest.raises(ssl.SSLCertVerificationError):
                            client.wrap_socket(raw, server_hostname=hostname)
            finally:
                serving.join(timeout=10)


# --- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_runs_modules_that_exist(services: dict[str, dict[str, Any]]) -> None:
    assert DOCKERFILE.is_file()
    instructions = _dockerfile_instructions()
    commands = [_exec_form(args) for keyword, args in instructions if keyword in ("CMD", "ENTRYPOINT")]
    assert commands, "Dockerfile has no CMD/ENTRYPOINT"
    commands += [_command(s) for s in services.values() if "build" in s]
    checked: set[str] = set()
    for argv in commands:
        words = [w for part in argv for w in shlex.split(part)] if argv[:2] == ["sh", "-c"] else argv
        for i, word in enumerate(words):
            if word == "uvicorn":
                module, _, attr = words[i + 1].partition(":")
                path = _module_file(module)
                assert path, f"uvicorn target {module} does not exist"
                tree = ast.parse(path.read_text())
                names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                         for t in node.targets if isinstance(t, ast.Name)}
                assert attr in names, f"{module} defines no top-level {attr!r}"
                checked.add(module)
            if word == "-m" and i > 0 and words[i - 1].startswith("python"):
                module = words[i + 1]
                path = _module_file(module)
                assert path, f"python -m {module}: no such module"
                if path.name == "__init__.py":
                    assert (path.parent / "__main__.py").is_file(), f"python -m {module}: package without __main__"
                checked.add(module)
    assert {"server.main", "streams"} <= checked


def test_dockerfile_installs_the_project_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG" and "=" in a}
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), f.split()[0]) for f in froms]
    assert all(base.startswith("python:3.11") and re.search(r"\d+\.\d+\.\d+", base) for base in bases), bases
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert "pip wheel" in runs and "pip install" in runs
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_copies_what_exists_and_is_not_ignored() -> None:
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith(("#", "!"))}
    for keyword, args in _dockerfile_instructions():
        if keyword != "COPY" or "--from" in args:
            continue
        sources = [w for w in shlex.split(args) if not w.startswith("--")][:-1]
        for source in sources:
            if source == ".":
                continue
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source not in ignored, f"COPY {source}: excluded by .dockerignore"
    # The build stage copies the whole context: the package sources must not be ignored.
    packages = ("core", "infra", "streams", "api", "cli", "schemas", "pyproject.toml", "topics.yaml", "migrations")
    assert not ignored & set(packages), ignored & set(packages)


def _runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage: the image that runs."""
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from + 1:]


def _image_contents() -> tuple[dict[str, Path], set[str]]:
    """What the runtime image holds: each COPY's destination -> its source in the repository, and the
    directories it makes (WORKDIR, `mkdir`)."""
    copies: dict[str, Path] = {}
    made: set[str] = set()
    for keyword, args in _runtime_stage():
        if keyword == "COPY" and "--from" not in args:
            *sources, destination = [w for w in shlex.split(args) if not w.startswith("--")]
            for source in sources:
                copies[destination.rstrip("/") if len(sources) == 1 else
                       f"{destination.rstrip('/')}/{Path(source).name}"] = ROOT / source
        if keyword == "WORKDIR":
            made.add(args.rstrip("/"))
        if keyword == "RUN":
            made.update(_made_by(shlex.split(args.replace("&&", " && "))))
    return copies, made


def _made_by(words: list[str]) -> set[str]:
    """The absolute directories of every `mkdir` in a shell command's words."""
    made, in_mkdir = set(), False
    for word in words:
        if word == "mkdir":
            in_mkdir = True
        elif in_mkdir and word.startswith("/"):
            made.add(word.rstrip("/"))
        elif not word.startswith("-"):
            in_mkdir = False
    return made


def _in_image(path: str, copies: dict[str, Path], made: set[str]) -> bool:
    path = path.rstrip("/")
    for destination, source in copies.items():
        if path == destination:
            return source.exists()
        if path.startswith(destination + "/"):
            return (source / path[len(destination) + 1:]).exists()
    return path in made


def _mount_targets(service: dict[str, Any]) -> set[str]:
    targets = set()
    for volume in service.get("volumes") or []:
        targets.add(volume["target"] if isinstance(volume, dict) else str(volume).split(":")[1])
    return targets


def _env_paths(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every absolute path named by the image's ENV and by the environment of the services run from it."""
    named: dict[str, str] = {}
    for keyword, args in _runtime_stage():
        if keyword == "ENV":
            for word in shlex.split(args):
                assert "=" in word, f"ENV {args}: use the KEY=value form"
                key, value = word.split("=", 1)
                named[f"Dockerfile ENV {key}"] = value
    for name, service in services.items():
        if "build" in service:
            named |= {f"{name}: {key}": value for key, value in _environment(service).items()}
    return {where: value for where, value in named.items() if value.startswith("/")}


def test_every_path_the_environment_names_is_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    """... or mounted into the service's container (the Kafka CA)."""
    copies, made = _image_contents()
    paths = _env_paths(services)
    assert any("BANK_RULES_FILE" in where for where in paths)
    mounted = {f"{name}: {target}" for name, service in services.items() for target in _mount_targets(service)}
    missing = {where: path for where, path in paths.items()
               if not _in_image(path, copies, made) and f"{where.split(':')[0]}: {path}" not in mounted}
    assert not missing, f"named by the environment, not in the image: {missing}"
    # Installed as a package, the default paths (core.settings.PROJECT_ROOT/...) point into site-packages:
    # every file or directory setting must be set to where the image has it.
    env = {where.split()[-1] for where in paths if where.startswith("Dockerfile ENV")}
    path_settings = {f"BANK_{name.upper()}" for name, field in Settings.model_fields.items()
                     if field.annotation is Path}
    assert path_settings <= env, f"path settings the image leaves at their source-tree default: {path_settings - env}"


@pytest.mark.parametrize("setting", ["BANK_RULES_FILE", "BANK_SANCTIONS_FILE"])
def test_a_worker_without_its_rules_or_sanctions_file_exits_at_once_naming_it(setting: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "missing-file"
    env = os.environ | {"PYTHONPATH": str(ROOT), "BANK_HOME": str(tmp_path / "home"), setting: str(missing),
                        "BANK_WORKER_WEB_PORT": str(free_port()), "BANK_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    try:   # the way the image and `bank up` start a worker; with no broker, an old worker would wait for ever
        ended = subprocess.run([sys.executable, "-m", "streams"], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=WORKER_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a worker with {setting}={missing} was still running after {WORKER_EXIT_TIMEOUT_S}s")
    assert ended.returncode != 0
    assert str(missing) in ended.stderr and setting in ended.stderr, ended.stderr[-2000:]


# --- Prometheus ----------------------------------------------------------------------------------

def test_prometheus_scrapes_api_and_workers(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    static_targets = {t for job in jobs.values() for sc in job.get("static_configs", []) for t in sc["targets"]}
    api_port = _environment(services["api"])["BANK_API_PORT"]
    assert f"api:{api_port}" in static_targets
    worker_port = int(_environment(services["worker"])["BANK_WORKER_WEB_PORT"])
    dns = [sd for job in jobs.values() for sd in job.get("dns_sd_configs", [])]
    assert any("worker" in sd["names"] and int(sd["port"]) == worker_port for sd in dns)
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())


def _prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_FILE.read_text())


def _option(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv."""
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def _listen_port(name: str, service: dict[str, Any]) -> int:
    """The port the service's process listens on inside the network, from its settings or command line."""
    env = _environment(service)
    argv = _command(service)
    if name == "api":
        port = _option(argv, "--port") or env["BANK_API_PORT"]
        assert port == env.get("BANK_API_PORT", port), "api: --port and BANK_API_PORT disagree"
        return int(port)
    if name in ("worker", "projector", "notifier"):
        assert env.get("BANK_WORKER_WEB_HOST") == "0.0.0.0", f"{name}: Prometheus cannot reach 127.0.0.1 in it"
        return int(env["BANK_WORKER_WEB_PORT"])
    if name == "lag-exporter":
        assert _option(argv, "--host") == "0.0.0.0", "lag-exporter: Prometheus cannot reach 127.0.0.1 in it"
        return int(_option(argv, "--port") or env.get("BANK_LAG_EXPORTER_PORT") or Settings().lag_exporter_port)
    raise AssertionError(f"no known listen port for scrape target service {name}")


def test_every_scrape_target_is_a_service_on_its_port(services: dict[str, dict[str, Any]]) -> None:
    """Each static target (host:port) and each DNS-SD name is a compose service listening on that port."""
    scraped: dict[str, set[int]] = {}
    for job in _prometheus_config()["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                if host != "localhost":  # Prometheus itself
                    scraped.setdefault(host, set()).add(int(port))
        for sd in job.get("dns_sd_configs", []):
            assert sd.get("type", "SRV") == "A", f"{job['job_name']}: SRV records need a port-less name"
            for name in sd["names"]:
                scraped.setdefault(name, set()).add(int(sd["port"]))
    assert set(scraped) == {"api", "worker", "projector", "lag-exporter", "notifier"}
    for name, ports in scraped.items():
        assert name in services, f"Prometheus scrapes {name}, which is not a compose service"
        assert ports == {_listen_port(name, services[name])}, f"{name}: scraped on {ports}"


def test_prometheus_jobs_are_the_ones_the_alerts_and_the_dev_stack_use() -> None:
    from cli.devstack import Stack

    compose_jobs = {job["job_name"] for job in _prometheus_config()["scrape_configs"]} - {"prometheus"}
    dev_jobs = {job["job_name"] for job in Stack(Settings()).prometheus_config()["scrape_configs"]}
    assert compose_jobs == dev_jobs == {"bankstream-api", "bankstream-worker", "bankstream-projector",
                                        "bankstream-lag-exporter", "bankstream-notifier"}


def test_prometheus_loads_the_mounted_alert_rules(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    config_file = _option(_command(prometheus), "--config.file")
    assert config_file
    mounts: dict[str, str] = {}
    for volume in prometheus.get("volumes") or []:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else str(volume).split(":")[:2]
        mounts[target] = source
    assert (ROOT / mounts[config_file]).resolve() == PROMETHEUS_FILE
    rule_files = _prometheus_config().get("rule_files") or []
    assert rule_files, "prometheus.yml loads no alert rules"
    config_dir = config_file.rsplit("/", 1)[0]
    for rule_file in rule_files:
        in_container = rule_file if rule_file.startswith("/") else f"{config_dir}/{rule_file}"
        assert in_container in mounts, f"rule file {in_container} is not mounted into the prometheus container"
        assert (ROOT / mounts[in_container]).resolve() == ROOT / "prometheus" / "alerts.yml"


def test_lag_exporter_service(services: dict[str, dict[str, Any]]) -> None:
    exporter = services["lag-exporter"]
    argv = _command(exporter)
    assert argv[:5] == ["python", "-m", "cli.main", "lag", "--serve"], argv
    assert all(_depends_on(exporter).get(node) == "service_healthy" for node in KAFKA_NODES)
    assert not exporter.get("ports"), "scraped inside the compose network; no host port needed"
    import typer.main

    from cli.main import app

    lag = typer.main.get_command(app).commands["lag"]
    options = {opt for param in lag.params for opt in getattr(param, "opts", [])}
    assert {word for word in argv if word.startswith("--")} <= options


# --- Grafana -------------------------------------------------------------------------------------

def test_grafana_provisioning(services: dict[str, dict[str, Any]]) -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [prometheus] = [d for d in datasources["datasources"] if d["type"] == "prometheus"]
    assert prometheus["url"].startswith("http://prometheus:")
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    mounts = {str(v).split(":")[1] for v in services["grafana"]["volumes"] if str(v).startswith("./grafana/dashboards")}
    assert all(p["options"]["path"] in mounts for p in providers["providers"])


def test_grafana_dashboards_parse_and_have_panels() -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    datasource_uids = {d["uid"] for d in datasources["datasources"]}
    files = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    assert files
    uids = set()
    for path in files:
        dashboard = json.loads(path.read_text())
        assert dashboard.get("panels"), f"{path.name}: no panels"
        assert dashboard["uid"] not in uids, f"{path.name}: duplicate uid"
        uids.add(dashboard["uid"])
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                assert target.get("expr"), f"{path.name}: panel {panel.get('title')!r} has a target without expr"
                assert target["datasource"]["uid"] in datasource_uids
