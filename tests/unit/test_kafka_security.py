"""Kafka security (infra/kafka_security.py): the settings, the client options each protocol gives, Faust's
credentials from the same settings, and every Kafka client of the code base built by the factories that add them."""

from __future__ import annotations

import ast
import asyncio
import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import infra.kafka_security
from core.settings import Settings
from infra.kafka import create_admin_client, create_consumer, group_less_consumer
from infra.kafka_security import client_options, faust_credentials, ssl_context
from infra.producer import create_producer

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = "kafka-1:9092"
SASL = {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "api", "kafka_sasl_password": "s3cret"}


def _settings(protocol: str, **fields: Any) -> Settings:
    return Settings(kafka_bootstrap=BOOTSTRAP, kafka_security_protocol=protocol, **fields)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA certificate, and a client certificate it signed with its key in a file of its own."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)

    def certificate(name: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(signer, hashes.SHA256()))

    ca_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {"ca": directory / "ca.crt", "cert": directory / "client.crt", "key": directory / "client.key"}
    pem = serialization.Encoding.PEM
    files["ca"].write_bytes(certificate("test CA", ca_key, "test CA", ca_key, True).public_bytes(pem))
    files["cert"].write_bytes(certificate("api", client_key, "test CA", ca_key, False).public_bytes(pem))
    files["key"].write_bytes(client_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return files


# --- the options of each protocol ------------------------------------------------------------------

def test_plaintext_adds_nothing_and_is_the_default() -> None:
    settings = Settings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert client_options(settings) == {}
    assert faust_credentials(settings) is None


def test_sasl_ssl_gives_the_mechanism_the_credentials_and_a_verifying_context(pki: dict[str, Path]) -> None:
    options = client_options(_settings("SASL_SSL", kafka_ssl_cafile=pki["ca"], **SASL))
    context = options.pop("ssl_context")
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "api", "sasl_plain_password": "s3cret"}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(entry[0] for entry in ca["subject"]) for ca in context.get_ca_certs()] == [{"commonName": "test CA"}]


def test_sasl_plaintext_gives_credentials_and_no_context() -> None:
    assert client_options(_settings("SASL_PLAINTEXT", **SASL | {"kafka_sasl_mechanism": "PLAIN"})) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "api",
        "sasl_plain_password": "s3cret"}


def test_ssl_gives_a_context_with_the_client_certificate_and_no_credentials(pki: dict[str, Path]) -> None:
    options = client_options(_settings("SSL", kafka_ssl_cafile=pki["ca"], kafka_ssl_certfile=pki["cert"],
                                       kafka_ssl_keyfile=pki["key"]))
    assert set(options) == {"security_protocol", "ssl_context"} and options["security_protocol"] == "SSL"
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_without_a_ca_file_the_systems_cas_verify_the_brokers() -> None:
    context = ssl_context(_settings("SSL"))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("protocol", ["SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_gets_the_same_options_from_its_credentials(protocol: str) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = _settings(protocol, **SASL if protocol.startswith("SASL_") else {})
    ours = client_options(settings)
    fausts = dict(credentials_to_aiokafka_auth(faust_credentials(settings)))
    assert isinstance(fausts.pop("ssl_context", None), ssl.SSLContext) == protocol.endswith("SSL")
    ours.pop("ssl_context", None)
    assert fausts == ours


# --- the settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "message"), [
    ({"kafka_security_protocol": "SASL_SSL"},
     "SASL_SSL needs BANK_KAFKA_SASL_MECHANISM, BANK_KAFKA_SASL_USERNAME, BANK_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", **SASL, "kafka_sasl_password": None},
     "needs BANK_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_SSL", **SASL, "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ({**SASL}, "BANK_KAFKA_SASL_MECHANISM, BANK_KAFKA_SASL_USERNAME, BANK_KAFKA_SASL_PASSWORD set, but "
               "BANK_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL"),
    ({"kafka_security_protocol": "SSL", "kafka_sasl_username": "api"}, "SSL does not use SASL"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", **SASL, "kafka_ssl_cafile": __file__},
     "BANK_KAFKA_SSL_CAFILE set, but BANK_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": __file__}, "BANK_KAFKA_SSL_CERTFILE, which is not set"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nowhere/ca.crt"}, "kafka_ssl_cafile"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/nowhere/client.crt"}, "kafka_ssl_certfile"),
])
def test_settings_refuse_a_half_configured_protocol(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("*", r"\*")):
        Settings(kafka_bootstrap=BOOTSTRAP, **fields)


def test_the_embedded_broker_speaks_plaintext_only() -> None:
    with pytest.raises(ValidationError, match="needs BANK_KAFKA_BOOTSTRAP"):
        Settings(kafka_bootstrap=None, kafka_security_protocol="SASL_SSL", **SASL)   # the session exports one


def test_settings_come_from_the_environment_and_hide_the_password(monkeypatch: pytest.MonkeyPatch,
                                                                  pki: dict[str, Path]) -> None:
    env = {"BANK_KAFKA_BOOTSTRAP": BOOTSTRAP, "BANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "BANK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "BANK_KAFKA_SASL_USERNAME": "ledger",
           "BANK_KAFKA_SASL_PASSWORD": "s3cret", "BANK_KAFKA_SSL_CAFILE": str(pki["ca"])}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.kafka_sasl_mechanism, settings.kafka_sasl_username) == ("SCRAM-SHA-256", "ledger")
    assert settings.kafka_ssl_cafile == pki["ca"]
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.model_dump_json()


def test_the_dev_stack_hands_its_children_the_password_itself(tmp_path: Path) -> None:
    from cli.devstack import Stack

    settings = _settings("SASL_SSL", home=tmp_path, **SASL)
    env = Stack(settings).child_env()
    assert env["BANK_KAFKA_SASL_PASSWORD"] == "s3cret"   # a settings dump would give "**********"
    assert env["BANK_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["BANK_KAFKA_SASL_USERNAME"] == "api"


# --- the factories -------------------------------------------------------------------------------

def _security_of(client: Any) -> tuple[str, str | None, Any]:
    """What an aiokafka client (producer, consumer or admin client, not started) will connect with."""
    kafka_client = getattr(client, "client", None) or client._client
    return kafka_client._security_protocol, kafka_client._sasl_plain_username, kafka_client._ssl_context


def _clients() -> list[Any]:
    async def build() -> list[Any]:   # aiokafka wants a running loop
        clients = [create_producer(BOOTSTRAP), create_consumer("bank.audit", bootstrap=BOOTSTRAP, group_id="g"),
                   group_less_consumer(BOOTSTRAP), create_admin_client(BOOTSTRAP)]
        await clients[0].stop()   # never started: only marks it closed
        return clients
    return asyncio.run(build())


def test_the_factories_build_plaintext_clients_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra.kafka_security, "get_settings", lambda: Settings())
    assert {_security_of(client) for client in _clients()} == {("PLAINTEXT", None, None)}


def test_the_factories_add_the_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra.kafka_security, "get_settings", lambda: _settings("SASL_SSL", **SASL))
    for client in _clients():
        protocol, username, context = _security_of(client)
        assert (protocol, username) == ("SASL_SSL", "api") and isinstance(context, ssl.SSLContext), type(client)


# --- every Kafka client of the code base goes through the factories --------------------------------

CONSTRUCTORS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient", "KafkaAdminClient",
                "KafkaProducer", "KafkaConsumer"}
FACTORY_MODULES = {"infra/producer.py", "infra/kafka.py"}
OTHER_KAFKA_LIBRARIES = {"kafka", "confluent_kafka"}   # a second client library would bypass the factories
# Not the platform: tests/ talks raw aiokafka to the embedded PLAINTEXT broker on purpose (the broker contract, the
# dead-letter sizes), and examples/ are readers of the topics with no bankstream code.
NOT_THE_PLATFORM = {"tests", "examples"}


def _platform_modules() -> Iterator[tuple[str, ast.Module]]:
    for top in sorted(ROOT.iterdir()):
        if top.name in NOT_THE_PLATFORM or top.name.startswith(".") or top.name.endswith(".egg-info"):
            continue
        paths = [top] if top.suffix == ".py" else sorted(top.rglob("*.py")) if top.is_dir() else []
        for path in paths:
            if "site-packages" not in path.parts:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def test_every_kafka_client_is_built_by_an_infra_factory() -> None:
    sites, modules = [], 0
    for module, tree in _platform_modules():
        modules += 1
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called_name(node) in CONSTRUCTORS and module not in FACTORY_MODULES:
                sites.append(f"{module}:{node.lineno} {_called_name(node)}(")
            if isinstance(node, ast.ImportFrom | ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[-1] in CONSTRUCTORS and alias.asname:
                        sites.append(f"{module}:{node.lineno} imports {alias.name} as {alias.asname}")
                imported = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(name.split(".")[0] in OTHER_KAFKA_LIBRARIES for name in imported):
                    sites.append(f"{module}:{node.lineno} imports {imported}")
    assert modules > 100, "the walk found too few modules to mean anything"
    assert not sites, ("build Kafka clients with infra's factories (create_producer, create_consumer, "
                       f"group_less_consumer, create_admin_client), which add the security settings: {sites}")


def test_the_factories_pass_the_security_options_to_every_client_they_build() -> None:
    for module in FACTORY_MODULES:
        tree = ast.parse((ROOT / module).read_text())
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _called_name(node) in CONSTRUCTORS]
        assert calls, module
        for call in calls:
            spread = [keyword.value for keyword in call.keywords if keyword.arg is None]
            assert any(isinstance(node, ast.Call) and _called_name(node) == "client_options"
                       for value in spread for node in ast.walk(value)), f"{module}:{call.lineno}"


def test_every_faust_app_gets_the_broker_credentials() -> None:
    apps = [(module, node) for module, tree in _platform_modules() for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "App"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "faust"]
    assert [module for module, _ in apps] == ["streams/app.py"]
    for module, call in apps:
        assert "broker_credentials" in {keyword.arg for keyword in call.keywords}, module
