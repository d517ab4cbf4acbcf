"""The live rule set of this worker: the newest version on bank.risk.rules, switched to without a restart.

Every worker reads the whole (single-partition, compacted) rules topic with its own group-less consumer, so
every worker sees every version. Scoring waits until the topic has been read to its end once, so a restarted
worker never scores with an older version than the live one. Until anything is published, the rules file
from the settings (rules/default.yaml) is the rule set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiokafka import ConsumerRecord

from core.risk.records import RuleSetPublished
from core.risk.rules import RuleSet, RuleSetError, load_rule_set
from core.risk.sanctions import SanctionsError, SanctionsList, load_sanctions
from core.topics import RISK_RULES
from infra.kafka import TopicFollower
from infra.topics import record_types
from schemas.codec import DecodeError, get_codec
from streams.metrics import RISK_RULE_SET

log = logging.getLogger(__name__)


class StartupFileError(Exception):
    """A file the worker cannot score without is missing, unreadable or invalid: the message names it."""


def check_startup_files(rules_file: Path, sanctions_file: Path) -> None:
    """Load the rules and sanctions files once before the worker starts. Rulebook.start reads them inside a Faust
    task, where a failure only stops that task: risk scoring would then wait for a rule set for ever while the
    worker looks alive. Raises StartupFileError."""
    for path, setting, what, load in ((rules_file, "BANK_RULES_FILE", "rules file", load_rule_set),
                                      (sanctions_file, "BANK_SANCTIONS_FILE", "sanctions file", load_sanctions)):
        try:
            load(path.read_text(), path.name)
        except FileNotFoundError:
            raise StartupFileError(f"the {what} {path} does not exist (set {setting})") from None
        except OSError as error:
            raise StartupFileError(f"the {what} {path} cannot be read: {error.strerror} (set {setting})") from None
        except (RuleSetError, SanctionsError) as error:
            raise StartupFileError(f"the {what} {path} is invalid: {error}") from None


@dataclass(frozen=True, slots=True)
class LiveRules:
    rule_set: RuleSet
    sanctions: SanctionsList


class Rulebook:
    def __init__(self, bootstrap: str, rules_file: Path, sanctions_file: Path) -> None:
        self._rules_file = rules_file
        self._sanctions_file = sanctions_file
        self.live: LiveRules | None = None
        self._codec = get_codec()
        self._follower = TopicFollower(bootstrap, RISK_RULES, self._load, on_caught_up=self._went_live)
        self.ready = self._follower.caught_up

    async def start(self) -> None:
        sanctions = load_sanctions(self._sanctions_file.read_text(), self._sanctions_file.name)
        self._switch(LiveRules(load_rule_set(self._rules_file.read_text(), self._rules_file.name), sanctions))
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    def _went_live(self) -> None:
        log.info("rule set %s is live", self.live.rule_set.version if self.live else None)

    def _load(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            self._load_one(record)

    def _load_one(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            published: RuleSetPublished = self._codec.decode(record.value, record.headers, record_types(RISK_RULES))
            rule_set = load_rule_set(published.text, published.source)
        except (DecodeError, RuleSetError) as error:
            # `bank rules publish` validates first; keep scoring with the current version, loudly.
            log.error("%s/0/%s: cannot load a published rule set, keeping %s: %s", RISK_RULES, record.offset,
                      self.live.rule_set.version if self.live else None, error)
            return
        assert self.live is not None
        self._switch(LiveRules(rule_set, self.live.sanctions))

    def _switch(self, live: LiveRules) -> None:
        if self.live is not None:
            if self.live.rule_set.version != live.rule_set.version:
                RISK_RULE_SET.remove(self.live.rule_set.version)
                log.info("switching rule set %s -> %s", self.live.rule_set.version, live.rule_set.version)
        self.live = live
        RISK_RULE_SET.labels(live.rule_set.version).set(1)
