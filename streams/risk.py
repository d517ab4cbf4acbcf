"""The risk agent: scores every money movement before the ledger sees it, and forwards every command in order.

bank.risk.commands (keyed by customer) -> for Deposit, Withdraw and Transfer: features from the tables,
rules evaluated (core.risk.scoring) -> RiskAssessed on bank.risk.assessments (and bank.risk.alerts unless
allowed) -> the command, untouched, onto bank.ledger.commands (keyed by account) with the assessment in
header `bank.risk.assessment`; the ledger holds, blocks or posts accordingly. Other commands pass through.

Crash safety is the batch engine's order (streams/checkpoint.py): sends are acknowledged before the tables are
written, and the tables before the offsets are committed. Redelivered after a crash before the tables were
written, a command is scored again against the same features, so it gets the same assessment; after the tables were written, its
assessment is in `risk_assessed` (kept for BANK_PROCESSED_RETENTION) and reused instead of scoring (and counting)
it twice.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from core import commands as c
from core.risk.evaluate import ASSESSMENT_HEADER, Assessment
from core.risk.features import AccountFeatures, CustomerFeatures, Movement
from core.risk.records import RiskAssessed
from core.risk.scoring import movement_of, score
from core.topics import LEDGER_COMMANDS, RISK_ALERTS, RISK_ASSESSMENTS, RISK_COMMANDS, RISK_COMMANDS_DLQ
from infra.logs import log_each
from infra.records import header_list
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec
from streams.app import app, at_shutdown, settings
from streams.checkpoint import Batch, RememberedIds, agent
from streams.dead_letters import RecordTooLarge, check_size
from streams.metrics import FRAUD_RULE_HITS, RISK_ASSESSED, RISK_ASSESSMENT_SECONDS
from streams.rulebook import LiveRules, Rulebook
from streams.tables import tables

log = logging.getLogger(__name__)

NEXT_COMMAND_KEY = "__risk_next_command__/{}"

account_features = tables.table("risk_accounts", help="account id -> AccountFeatures",
                                encode=AccountFeatures.to_dict, decode=AccountFeatures.from_dict)
customer_records = tables.table("risk_customers", help="customer id -> CustomerFeatures",
                                encode=lambda features: {"features": features.to_dict()},
                                decode=lambda stored: CustomerFeatures.from_dict(stored["features"]))
# Each movement's assessment, by command id, for the retention window: a redelivered command (its offset not yet
# committed when the worker stopped) gets the assessment it had, instead of being scored and counted again.
assessed_table = tables.table("risk_assessed", help="command id -> [partition, assessed at, Assessment.to_dict()]")
assessed = RememberedIds(assessed_table, settings.processed_retention)
rulebook = Rulebook(settings.kafka, settings.rules_file, settings.sanctions_file)
codec = get_codec()
command_types = record_types(RISK_COMMANDS)


class Work:
    """The features a batch reads and changes, kept once its records are acknowledged."""

    def __init__(self, live: LiveRules, batch: Batch) -> None:
        self.live, self.batch = live, batch
        self.now = int(time.time())
        self.accounts: dict[str, AccountFeatures] = {}
        self.customers: dict[str, CustomerFeatures] = {}
        self.assessments: dict[str, Assessment] = {}   # this batch's, by command id
        self.partition_of: dict[str, int] = {}      # table key -> partition of the message that changed it
        self.flagged: list[dict[str, Any]] = []     # a log line each, written once for the batch

    def account(self, account_id: str) -> AccountFeatures | None:
        if account_id not in self.accounts:
            stored = account_features.get(account_id)
            if stored is None:
                return None
            self.accounts[account_id] = stored
        return self.accounts[account_id]

    def customer(self, customer_id: str) -> CustomerFeatures:
        if customer_id not in self.customers:
            stored = customer_records.get(customer_id)
            self.customers[customer_id] = CustomerFeatures(customer_id=customer_id) if stored is None else stored
        return self.customers[customer_id]

    def known(self, command_id: str) -> Assessment | None:
        if command_id in self.assessments:
            return self.assessments[command_id]
        stored = assessed.value(command_id)
        return None if stored is None else Assessment.from_dict(stored)

    def assess(self, command: c.Command, movement: Movement, partition: int) -> tuple[Assessment, bool]:
        """The movement's assessment, and whether it is new (False: a redelivery, assessed before)."""
        known = self.known(command.command_id)
        if known is not None:
            return known, False
        started = time.perf_counter()
        scored = score(movement, self.account(movement.account_id), self.customer(movement.customer_id),
                       self.live.rule_set, self.live.sanctions)
        RISK_ASSESSMENT_SECONDS.observe(time.perf_counter() - started)
        self.accounts[movement.account_id] = scored.account
        self.customers[movement.customer_id] = scored.customer
        self.assessments[command.command_id] = scored.assessment
        assessed.remember(self.batch, partition, command.command_id, self.now, scored.assessment.to_dict())
        self.partition_of[movement.account_id] = self.partition_of[movement.customer_id] = partition
        return scored.assessment, True

    def keep_tables(self, batch: Batch) -> None:
        for account_id, features in self.accounts.items():
            if account_id in self.partition_of:
                batch.keep(account_features, self.partition_of[account_id], account_id, features)
        for customer_id, features in self.customers.items():
            if customer_id in self.partition_of:
                batch.keep(customer_records, self.partition_of[customer_id], customer_id, features)


async def decide(batch: Batch) -> None:
    await rulebook.ready.wait()
    assert rulebook.live is not None
    work = Work(rulebook.live, batch)   # one rule-set version per batch: a switch lands between batches
    assessed.forget_expired(batch, work.now)
    for message in batch.records:
        _decide_one(batch, work, message)
    work.keep_tables(batch)
    log_each(log, "movement flagged", work.flagged)


def _decide_one(batch: Batch, work: Work, message: Any) -> None:
    try:
        check_size(message)   # before decoding: forwarded with our headers it could pass Kafka's limit
        command: c.Command = codec.decode(message.value, message.headers, command_types)
        customer_id = bytes(message.key).decode()
    except (RecordTooLarge, DecodeError, TypeError, UnicodeDecodeError) as error:
        batch.dead_letter(RISK_COMMANDS_DLQ, message, error)
        return
    # Only this agent speaks for the risk engine: a verdict arriving from outside is dropped.
    headers = [(k, v) for k, v in header_list(message) if k != ASSESSMENT_HEADER]
    movement = movement_of(command, customer_id)
    if movement is not None:
        try:
            assessment, new = work.assess(command, movement, message.partition)
            record = RiskAssessed.of(command.command_id, command.correlation_id, movement, assessment,
                                     datetime.now(UTC))
            encoded = codec.encode(record)
        except Exception as error:  # noqa: BLE001 - scoring is pure: a retry would raise again, for ever
            # Unscored, the command must not reach the ledger: it waits on the dead-letter topic with the error.
            log.exception("command %s could not be scored", command.command_id)
            batch.dead_letter(RISK_COMMANDS_DLQ, message, error)
            return
        headers.append((ASSESSMENT_HEADER, assessment.to_header()))
        _record(batch, work, command, movement, assessment, new, encoded)
    batch.emit(LEDGER_COMMANDS, message.value, command.account_id.encode(), headers)


def _record(batch: Batch, work: Work, command: c.Command, movement: Movement, assessment: Assessment, new: bool,
            encoded: tuple[bytes, list[tuple[str, bytes]]]) -> None:
    value, headers = encoded
    key = movement.account_id.encode()
    batch.emit(RISK_ASSESSMENTS, value, key, headers)
    if assessment.action != "allow":
        batch.emit(RISK_ALERTS, value, key, headers)
    if new:
        RISK_ASSESSED.labels(assessment.action).inc()
        for hit in assessment.hits:
            FRAUD_RULE_HITS.labels(hit.rule_id, hit.action).inc()
        if assessment.action != "allow":
            work.flagged.append({
                "command_id": command.command_id, "account_id": movement.account_id, "action": assessment.action,
                "score": assessment.score, "rules": [h.rule_id for h in assessment.hits],
                "rule_set_version": assessment.rule_set_version})


risk_agent = agent(RISK_COMMANDS, name="risk", offsets_key=NEXT_COMMAND_KEY,
                   reset=lambda partitions: assessed.restored(),
                   snapshot_every=settings.risk_snapshot_interval)(decide)


@app.task
async def _start_rulebook() -> None:
    await rulebook.start()


at_shutdown(rulebook.stop)
