#!/usr/bin/env bash
# Starts a Kafka node of docker-compose (README, "Kafka security"): writes its JAAS login file from ADMIN_PASSWORD,
# then runs the image's own start. A file, not KAFKA_LISTENER_NAME_*_SASL_JAAS_CONFIG: the image turns KAFKA_*
# variables into properties but drops every value holding '=', as a JAAS configuration does.
#   PLAIN: the brokers' and controllers' own listeners (BROKER, CONTROLLER); one user, the super user admin.
#   SCRAM-SHA-512: the clients' listeners (CLIENT, EXTERNAL); the users are in the cluster (kafka-init makes them).
set -euo pipefail
umask 077
cat > /tmp/kafka_server_jaas.conf <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin" password="${ADMIN_PASSWORD:?}" user_admin="${ADMIN_PASSWORD:?}";
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
JAAS
export KAFKA_OPTS="${KAFKA_OPTS:-} -Djava.security.auth.login.config=/tmp/kafka_server_jaas.conf"
exec /etc/kafka/docker/run
