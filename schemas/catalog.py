"""The topic catalogue of this tree: core/catalog.py over topics.yaml and schemas/*.avsc (`bank catalog`,
GET /v1/catalog, tests/unit/test_catalog.py)."""

from __future__ import annotations

from pathlib import Path

from core.catalog import Catalog, build_catalog
from core.settings import PROJECT_ROOT
from core.topics import parse_registry
from schemas.codec import current_schemas

TOPICS_FILE = PROJECT_ROOT / "topics.yaml"
CATALOG_FILE = PROJECT_ROOT / "docs" / "topics.md"


def current_catalog(topics_file: Path = TOPICS_FILE) -> Catalog:
    """The catalogue of the tree's own topics.yaml (not BANK_TOPICS_FILE: docs/topics.md documents the project)."""
    return build_catalog(parse_registry(topics_file.read_text()), current_schemas())
