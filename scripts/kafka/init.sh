#!/usr/bin/env bash
# kafka-init (docker-compose, README "Kafka security"): the SCRAM-SHA-512 user of every service principal and its
# ACLs, as the super user admin over the brokers' own listener. Idempotent: it runs on every `docker compose up`
# (a user's password is set again from the environment, an ACL already there is kept).
#
# The brokers deny what no ACL allows (allow.everyone.if.no.acl.found=false). Each principal may write the topics
# topics.yaml names it a producer of and read those it names it a consumer of, nothing else
# (tests/integration/test_compose.py holds this file to topics.yaml). Write and Read imply Describe.
set -euo pipefail
. "$(dirname "$0")/admin.sh"
BOOTSTRAP=kafka-1:9094,kafka-2:9094,kafka-3:9094
BIN=/opt/kafka/bin
CONFIG=/tmp/admin.properties
admin_config "$CONFIG"

user() {   # user NAME: its SCRAM-SHA-512 credential, the password from <NAME>_PASSWORD (upper case, - as _)
  local variable=${1^^}_PASSWORD
  variable=${variable//-/_}
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" --alter --entity-type users \
    --entity-name "$1" --add-config "SCRAM-SHA-512=[iterations=8192,password=${!variable:?$variable is not set}]" > /dev/null
  echo "user $1"
}

allow() {   # allow PRINCIPAL OPERATION[,OPERATION] KIND NAME...   KIND: topic, group, cluster, or *-prefix
  local principal=$1 operations=$2 kind=$3 operation name
  shift 3
  local resources="$kind $*"
  local args=(--add --allow-principal "User:$principal")
  for operation in ${operations//,/ }; do args+=(--operation "$operation"); done
  if [[ $kind == *-prefix ]]; then
    kind=${kind%-prefix}
    args+=(--resource-pattern-type prefixed)
  fi
  if [[ $kind == cluster ]]; then args+=(--cluster); fi
  for name; do args+=(--"$kind" "$name"); done
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" "${args[@]}" > /dev/null
  echo "allow $principal $operations $resources"
}

for principal in api ledger projector notifier scheduler gateway setup lag-exporter schema-registry; do
  user "$principal"
done

# The API (server.main): commands, the audit log, business time, the record desks (standing orders, loans, savings),
# tellers' drawers on the ledger; it folds the ledger and the desks' topics; readiness describes the workers' groups.
allow api Write topic bank.risk.commands bank.ledger.commands bank.ledger.events bank.audit bank.clock \
  bank.standing-orders bank.loans bank.interest bank.fx.rates
allow api Read topic bank.ledger.events bank.clock bank.standing-orders bank.loans bank.interest bank.fx.rates
allow api Describe group-prefix bankstream-

# The stream workers (group bankstream-ledger: the ledger and risk agents, the transfer saga, one consumer per
# worker): their tables' changelogs (`setup` creates them) are bankstream-ledger-*, and under exactly_once each
# agent's transactional id is bankstream-ledger-<agent>-<worker id>.
allow ledger Write topic bank.ledger.commands bank.ledger.commands.dlq bank.ledger.events bank.ledger.events.dlq \
  bank.risk.commands.dlq bank.risk.assessments bank.risk.alerts bank.payments.outbound
allow ledger Read topic bank.ledger.commands bank.risk.commands bank.ledger.events bank.risk.rules
allow ledger Create,Read,Write topic-prefix bankstream-ledger-
allow ledger Read group bankstream-ledger-workers
# Faust's group, which read the workers' topics before: the workers' group starts where it left off.
allow ledger Describe group bankstream-ledger
allow ledger Write transactional-id-prefix bankstream-ledger

# The projection workers: the ledger into PostgreSQL, Redis and MongoDB, the audit log into MongoDB.
allow projector Read topic bank.ledger.events bank.audit
allow projector Read group-prefix bankstream-projection-
allow projector Read group bankstream-audit-trail

# The notifier.
allow notifier Read topic bank.ledger.events bank.audit bank.standing-orders bank.loans
allow notifier Read group bankstream-notifier

# The scheduler's process: standing orders, the loan servicer, the close-of-business job.
allow scheduler Write topic bank.risk.commands bank.ledger.commands bank.standing-orders bank.loans bank.interest
allow scheduler Read topic bank.ledger.events bank.standing-orders bank.loans bank.interest bank.clock

# The payment gateway connector.
allow gateway Read topic bank.payments.outbound
allow gateway Read group bankstream-gateway
allow gateway Write topic bank.ledger.commands bank.payments.outbound.dlq

# `setup` (`bank topics apply`): creates topics.yaml's topics and compares the existing ones' configuration.
allow setup Create,Describe,DescribeConfigs topic-prefix bank. bankstream-

# The consumer-lag exporter: end offsets and the groups' committed offsets.
allow lag-exporter Describe topic-prefix bank. bankstream-
allow lag-exporter Describe group-prefix bankstream-

# The schema registry keeps its schemas in _schemas; its group ids are schema-registry*.
allow schema-registry All topic _schemas
allow schema-registry Read group-prefix schema-registry
