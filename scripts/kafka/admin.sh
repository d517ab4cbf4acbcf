# Sourced by the brokers' healthcheck and kafka-init: the super user `admin`'s client settings, for the brokers'
# own listener (BROKER, port 9094: SASL_SSL with PLAIN), written from ADMIN_PASSWORD into the file named.
admin_config() {   # admin_config FILE
  (umask 077 && cat > "$1" <<CONFIG
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${ADMIN_PASSWORD:?}";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
CONFIG
  )
}
