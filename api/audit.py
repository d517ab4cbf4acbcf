"""Records people's actions on bank.audit (core/audit.py says what a record holds).

The auth dependency sets the request's client (IP, user agent) in a context variable, like the actor, so code
far from the request (the command bus) records them too. A record is on the broker before the API answers.
"""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from core.audit import AUDIT_TRAIL_COLLECTION, Actor, AuditRecorded, current_actor
from core.identity import Principal
from core.readmodel import MONGO_DB
from core.topics import AUDIT
from infra.logs import current_trace_id, trace_header
from schemas.codec import get_codec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Client:
    ip: str
    user_agent: str | None


_CLIENT: ContextVar[Client | None] = ContextVar("bank_client", default=None)


def set_current_client(client: Client) -> None:
    _CLIENT.set(client)


def current_client() -> Client | None:
    return _CLIENT.get()


class AuditLog:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        """`producer`: the process's one producer, started and stopped by its owner (see api/main.py)."""
        self._producer = producer
        self._codec = get_codec()

    async def record(self, action: str, outcome: str = "success", *, reason: str | None = None,
                     actor: Principal | Actor | None = None, subject_user_id: str | None = None,
                     details: dict[str, str] | None = None) -> AuditRecorded:
        """Record one action; the actor defaults to the request's authenticated caller."""
        actor = actor or current_actor()
        client = current_client()
        record = AuditRecorded(
            event_id=str(uuid.uuid4()), occurred_at=datetime.now(UTC), action=action, outcome=outcome,
            reason=reason, actor_user_id=actor.user_id if actor else None, actor_role=actor.role if actor else None,
            actor_session_id=actor.session_id if actor else None, subject_user_id=subject_user_id,
            ip=client.ip if client else None, user_agent=client.user_agent if client else None,
            trace_id=current_trace_id(), details={k: str(v) for k, v in (details or {}).items() if v is not None})
        value, headers = self._codec.encode(record)
        key = (record.actor_user_id or subject_user_id or "anonymous").encode()
        await self._producer.send_and_wait(AUDIT, value, key=key, headers=headers + trace_header())
        log.info("audit: %s %s", action, outcome, extra={"audit_event_id": record.event_id, "reason": reason,
                                                          "user_id": record.actor_user_id})
        return record


@dataclass(frozen=True, slots=True)
class TrailQuery:
    user_id: str | None = None        # as actor or as subject
    actions: tuple[str, ...] = ()
    outcome: str | None = None
    ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def filter(self, after: tuple[datetime, str] | None) -> dict[str, Any]:
        query: dict[str, Any] = {}
        clauses: list[dict[str, Any]] = []
        if self.user_id:
            clauses.append({"$or": [{"actor.user_id": self.user_id}, {"subject_user_id": self.user_id}]})
        if self.actions:
            query["action"] = {"$in": list(self.actions)}
        if self.outcome:
            query["outcome"] = self.outcome
        if self.ip:
            query["ip"] = self.ip
        moment: dict[str, Any] = {}
        if self.since:
            moment["$gte"] = self.since
        if self.until:
            moment["$lt"] = self.until
        if moment:
            query["occurred_at"] = moment
        if after:
            clauses.append({"$or": [{"occurred_at": {"$lt": after[0]}},
                                    {"occurred_at": after[0], "_id": {"$lt": after[1]}}]})
        if clauses:
            query["$and"] = clauses
        return query


class AuditTrail:
    """Reads the audit_trail collection that streams/projections/audit.py folds from bank.audit."""

    def __init__(self, mongo: AsyncMongoClient) -> None:
        self._collection = mongo[MONGO_DB][AUDIT_TRAIL_COLLECTION]

    async def erase(self, user_id: str) -> int:
        """Tombstone a person's records (as actor or subject): what they did stays (action, outcome, time), who
        they were and where from goes (IP, user agent, details). Returns how many records were changed."""
        result = await self._collection.update_many(
            {"$or": [{"actor.user_id": user_id}, {"subject_user_id": user_id}]},
            {"$set": {"ip": None, "user_agent": None, "details": {"erased": "true"}}})
        return int(result.modified_count)

    async def search(self, query: TrailQuery, after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        cursor = self._collection.find(query.filter(after)).sort([("occurred_at", -1), ("_id", -1)]).limit(limit)
        return [doc async for doc in cursor]
