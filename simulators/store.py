"""What a simulator received, kept in memory and appended to a JSON-lines file, so a restart loses nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MessageLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.messages: list[dict[str, Any]] = []
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    self.messages.append(json.loads(line))

    def append(self, message: dict[str, Any]) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(message, default=str) + "\n")
            file.flush()
        self.messages.append(message)

    def rewrite(self) -> None:
        """After a message changed in place (an SMS delivered): the whole file again."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(m, default=str) + "\n" for m in self.messages))
        tmp.replace(self.path)

    def select(self, to: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        found = [m for m in self.messages if to is None or to in (m.get("to") or [])
                 or m.get("to") == to]
        return found[-limit:]
