"""Kafka security: the one translation of the BANK_KAFKA_SECURITY_*/SASL_*/SSL_* settings into client options.

Every Kafka client of the platform is built by a factory of infra/ (`create_producer`, `create_consumer`,
`group_less_consumer`, `create_admin_client`), and each factory adds `client_options()` of the process's settings
(`get_settings()`: a process has one), so a call site passes a bootstrap string and never thinks of security.
Faust builds its own clients: streams/app.py hands it `faust_credentials()`, made from the same options.
PLAINTEXT, the default and the embedded broker's only protocol, adds nothing: the clients' own defaults.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


def client_options(settings: Settings | None = None) -> dict[str, Any]:
    """The security keyword arguments of AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient (default: the
    process's settings). Empty for PLAINTEXT."""
    settings = settings or get_settings()
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password   # never None here: the settings refuse SASL without credentials
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": password.get_secret_value() if password else None}
    if protocol.endswith("SSL"):
        options["ssl_context"] = ssl_context(settings)
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client context that verifies the brokers' certificates and host names (against BANK_KAFKA_SSL_CAFILE, or
    the system's CAs when it is unset) and presents the client certificate when one is set."""
    context: ssl.SSLContext = create_ssl_context(cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
                                                 keyfile=settings.kafka_ssl_keyfile)
    return context


def faust_credentials(settings: Settings | None = None) -> CredentialsT | None:
    """Faust's `broker_credentials` for the same settings (None for PLAINTEXT: Faust's default)."""
    options = client_options(settings)
    if not options:
        return None
    from faust.auth import SASLCredentials, SSLCredentials   # here: only the stream workers use Faust

    if options["security_protocol"] == "SSL":
        return SSLCredentials(options["ssl_context"])
    # SASL_SSL when given a context, SASL_PLAINTEXT without
    return SASLCredentials(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                           mechanism=options["sasl_mechanism"], ssl_context=options.get("ssl_context"))
