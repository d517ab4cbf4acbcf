#!/usr/bin/env bash
# Starts the schema registry of docker-compose as Kafka user schema-registry (SCRAM-SHA-512 over SASL_SSL): writes
# the JAAS login file from SASL_PASSWORD, for the registry and for the image's broker check before it, then runs the
# image's own start. A file, not SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG: some releases of the image's
# environment-to-properties step drop values holding '=', as a JAAS configuration does.
set -euo pipefail
umask 077
cat > /tmp/schema_registry_jaas.conf <<JAAS
KafkaClient {
  org.apache.kafka.common.security.scram.ScramLoginModule required
    username="schema-registry" password="${SASL_PASSWORD:?}";
};
JAAS
login="-Djava.security.auth.login.config=/tmp/schema_registry_jaas.conf"
export SCHEMA_REGISTRY_OPTS="${SCHEMA_REGISTRY_OPTS:-} $login" KAFKA_OPTS="${KAFKA_OPTS:-} $login"
exec /etc/confluent/docker/run
