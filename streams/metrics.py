"""Prometheus metrics of the stream processes (ledger worker, projection worker), served on their /metrics.

Names follow Prometheus conventions: a `bank_` prefix, base units in the name, `_total` on counters, and
label values from small fixed sets (command and event types, agent and projection names, rule ids).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# ---- ledger and saga
COMMANDS_DECIDED = Counter("bank_ledger_commands_total", "Commands decided by the ledger, by command type and "
                          "outcome (accepted, rejected, duplicate)", ["type", "outcome"])
COMMAND_LATENCY = Histogram("bank_ledger_command_latency_seconds", "From a command's issue to its events being "
                            "acknowledged by the broker", ["type"], buckets=LATENCY_BUCKETS)
EVENTS_PROCESSED = Counter("bank_agent_messages_processed_total", "Messages handled by each stream agent",
                           ["agent"])
DEAD_LETTERS = Counter("bank_dead_letters_total", "Messages sent to a dead-letter topic", ["topic"])
SAGA_IN_FLIGHT = Gauge("bank_saga_transfers_in_flight", "Transfers debited and not yet credited or reversed, on "
                       "the partitions this worker drives")
SAGA_OLDEST_AGE = Gauge("bank_saga_oldest_in_flight_age_seconds", "Age of the oldest transfer still in flight")

# ---- the batch engine's tables (streams/tables.py)
REMEMBERED_IDS = Gauge("bank_remembered_ids", "Ids an agent remembers for BANK_PROCESSED_RETENTION, by table: the "
                       "ledger's processed commands (commands), the risk agent's assessments (risk_assessed)",
                       ["table"])
TABLE_RESTORE_SECONDS = Gauge("bank_table_restore_seconds", "How long the last restore of newly assigned "
                              "partitions took, all tables read from their changelogs")
TABLE_RESTORED_RECORDS = Counter("bank_table_restored_records_total", "Changelog records read back into a table "
                                 "by restores", ["table"])

# ---- projections (read models)
PROJECTION_BATCH = Histogram("bank_projection_batch_events", "Events per batch applied to a read model",
                             ["projection"], buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000))
PROJECTION_APPLY = Histogram("bank_projection_apply_seconds", "Time to apply one batch to a read model",
                             ["projection"], buckets=LATENCY_BUCKETS)
PROJECTION_APPLIED = Counter("bank_projection_events_applied_total", "Events applied to a read model",
                             ["projection"])
PROJECTION_PARKED = Counter("bank_projection_parked_events_total", "Events a read model could not apply and "
                            "parked", ["projection"])
PROJECTION_LAG = Gauge("bank_projection_lag_events", "Events between a read model's position and the end of the "
                       "event log, as its consumer last saw it", ["projection"])
PROJECTION_ERRORS = Counter("bank_projection_errors_total", "Transient failures of a read model's store "
                            "(retried)", ["projection"])

# ---- fraud and AML scoring (rules evaluated in the stream)
FRAUD_RULE_HITS = Counter("bank_fraud_rule_hits_total", "Risk rules that matched a money movement, by rule and "
                          "action (allow, alert, hold, block)", ["rule", "action"])
RISK_ASSESSED = Counter("bank_risk_assessments_total", "Money movements scored, by the action decided",
                        ["action"])
RISK_ASSESSMENT_SECONDS = Histogram("bank_risk_assessment_seconds", "Time to compute the features and evaluate the "
                                    "rules for one money movement", buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                                             0.005, 0.01, 0.025, 0.05, 0.1))
RISK_RULE_SET = Gauge("bank_risk_rule_set_info", "The rule-set version this worker scores with (1 = live)",
                      ["version"])
FRAUD_REVIEW_BACKLOG = Gauge("bank_fraud_review_backlog_cases", "Held transactions and alerts awaiting review")


def exposition() -> tuple[bytes, str]:
    """The process's metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
