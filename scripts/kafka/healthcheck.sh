#!/usr/bin/env bash
# A Kafka node is healthy once it answers the super user on the brokers' listener: TLS, SASL and the broker are up.
set -euo pipefail
. "$(dirname "$0")/admin.sh"
admin_config /tmp/healthcheck.properties
exec /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9094 \
  --command-config /tmp/healthcheck.properties > /dev/null 2>&1
