"""The project's schemas as a schema registry sees them: ids, subjects and their versions.

Computed from the files alone (schemas/*.avsc, schemas/history/, schemas/schema_ids.json, topics.yaml), so the
embedded registry (schemas/registry_server.py) serves exactly what the writers' ids mean, and `bank schemas
release --registry URL` registers the same thing in a real registry. Subject naming is explained in
schemas/codec.py: `<topic>-value` for a topic of one record type, `<topic>-<record full name>` for every type of
every topic (the only subjects of the topics carrying several types).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx

from core.topics import TopicSpec
from schemas.codec import HISTORY_DIR, current_schemas, load_schema, read_schema_ids, version_of


@dataclass(frozen=True)
class SchemaVersion:
    """One released version of one record type's schema, with its registry id."""

    schema_id: int
    name: str
    version: int
    schema: dict[str, Any]

    @property
    def full_name(self) -> str:
        namespace = self.schema.get("namespace")
        return f"{namespace}.{self.name}" if namespace else self.name

    @cached_property
    def text(self) -> str:
        """The schema as registered: the .avsc file's JSON, compact."""
        return json.dumps(self.schema, separators=(",", ":"))


def released_versions(ids: Mapping[str, Mapping[str, int]] | None = None) -> list[SchemaVersion]:
    """Every released version that has an id, in id order (the order a fresh registry must see them in)."""
    ids = read_schema_ids() if ids is None else ids
    current = current_schemas()
    found = []
    for name, versions in ids.items():
        for version, schema_id in versions.items():
            schema = current.get(name)
            if schema is None or version_of(schema) != int(version):
                path = HISTORY_DIR / f"{name}.v{version}.avsc"
                if not path.exists():
                    continue    # an unreleased or removed version: nothing can have written it
                schema = load_schema(path)
            found.append(SchemaVersion(schema_id, name, int(version), schema))
    return sorted(found, key=lambda item: item.schema_id)


def subjects_of(topic: TopicSpec, full_names: Mapping[str, str]) -> dict[str, str]:
    """The subjects of a topic: subject -> record type. `full_names`: record type -> its Avro full name."""
    subjects = {f"{topic.name}-{full_names[name]}": name for name in topic.value_schemas if name in full_names}
    if len(topic.value_schemas) == 1 and topic.value_schemas[0] in full_names:
        subjects[f"{topic.name}-value"] = topic.value_schemas[0]
    return subjects


class SchemaCatalog:
    """Subjects with their versions, and schemas by id: everything a registry's read API answers."""

    def __init__(self, topics: Mapping[str, TopicSpec], versions: list[SchemaVersion] | None = None) -> None:
        self.versions = released_versions() if versions is None else versions
        self.by_id = {item.schema_id: item for item in self.versions}
        full_names = {item.name: item.full_name for item in self.versions}
        self.subjects: dict[str, list[SchemaVersion]] = {}
        for topic in topics.values():
            for subject, name in subjects_of(topic, full_names).items():
                self.subjects[subject] = sorted((v for v in self.versions if v.name == name),
                                                key=lambda item: item.version)

    def subject_version(self, subject: str, version: str) -> tuple[int, SchemaVersion] | None:
        """The registry's version number (1, 2, ... in the subject) and the schema; `version` may be `latest`."""
        versions = self.subjects.get(subject)
        if not versions:
            return None
        number = len(versions) if version in ("latest", "-1") else int(version)
        return (number, versions[number - 1]) if 1 <= number <= len(versions) else None

    def registrations(self) -> list[tuple[str, SchemaVersion]]:
        """(subject, schema) pairs in the order that gives a fresh registry our ids: by id, then by subject."""
        pairs = [(subject, item) for subject, items in self.subjects.items() for item in items]
        return sorted(pairs, key=lambda pair: (pair[1].schema_id, pair[0]))


MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY_LEVEL = "BACKWARD_TRANSITIVE"   # the project's rule: a schema reads every earlier version's data


def publish(catalog: SchemaCatalog, client: httpx.Client) -> list[str]:
    """Register every released schema version under its subjects in the registry `client` talks to (Confluent
    Schema Registry, Karapace or the embedded one), in id order; the problems found (none: all done).

    Writers put the ids of schemas/schema_ids.json in messages without asking any registry, so the registry
    must hand out the same ids. A fresh registry numbers new schemas 1, 2, 3... in the order it first sees
    them, which is id order here; a schema registered again (under another subject, or by a second release)
    keeps its id. A registry that already holds other schemas may answer other ids: that is reported."""
    problems = []
    for subject in sorted(catalog.subjects):
        client.put(f"/config/{quote(subject, safe='')}", json={"compatibility": COMPATIBILITY_LEVEL},
                   headers={"Content-Type": MEDIA_TYPE})
    for subject, item in catalog.registrations():
        response = client.post(f"/subjects/{quote(subject, safe='')}/versions", json={"schema": item.text},
                               headers={"Content-Type": MEDIA_TYPE})
        if response.status_code != 200:
            problems.append(f"{subject}: {item.name} v{item.version}: HTTP {response.status_code} {response.text}")
        elif (answered := response.json().get("id")) != item.schema_id:
            problems.append(f"{subject}: the registry gave {item.name} v{item.version} id {answered}, writers use "
                            f"{item.schema_id} (schemas/schema_ids.json): release into an empty registry")
    return problems
