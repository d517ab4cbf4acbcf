"""Sanctions screening: counterparty names against an SDN-style list, normalised and fuzzy-matched.

The list is a CSV with the columns `uid,name,aliases,country,program`; aliases are separated by ";". Lines
starting with "#" are comments. Every listed name and alias is normalised the same way as the screened name:

    transliterate to ASCII (unidecode) -> casefold -> drop apostrophes -> other punctuation becomes a space ->
    drop titles and legal forms ("mr", "dr", "ltd", "llc", ...) -> sort the tokens

so "Dr. Núñez-Álvarez, José" and "jose alvarez nunez" are the same string. A name scores 100 against an entry
when the normalised strings are equal, or when every token of a listed name of two or more tokens appears in
the screened name (an added middle name does not hide a listed person). Otherwise the score is rapidfuzz's
`fuzz.token_sort_ratio`: 100 x (1 - normalised Indel distance) of the sorted tokens, which tolerates
transliteration variants and typos. `WRatio` is not used: its partial matching scores a short listed name
inside any longer name near 100 ("Ali" in "Alibaba Trading"), which floods the review queue.

`DEFAULT_THRESHOLD` = 90: about one edit per ten characters ("Mohamed" vs "Mohammed" is 93); a rule may set
its own `threshold` (50..100).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from unidecode import unidecode

DEFAULT_THRESHOLD = 90
COLUMNS = ("uid", "name", "aliases", "country", "program")

# Words that say nothing about who someone is: honorifics and legal forms.
NOISE_WORDS = frozenset({
    "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "dame", "madam", "mme", "mlle", "herr", "frau", "sr", "sra",
    "sheikh", "shaikh", "haji", "hajji", "gen", "general", "col", "colonel", "capt", "captain",
    "ltd", "limited", "llc", "inc", "corp", "corporation", "co", "plc", "gmbh", "ag", "sa", "sarl", "bv", "nv",
})
_APOSTROPHES = re.compile(r"['\u2018\u2019`]")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


class SanctionsError(ValueError):
    """A malformed list: names the file and line."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source, self.line, self.problem = source, line, problem


@dataclass(frozen=True, slots=True, kw_only=True)
class SanctionsEntry:
    uid: str
    name: str
    aliases: tuple[str, ...]
    country: str
    program: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    uid: str
    listed_name: str        # the entry's primary name
    matched_name: str       # the name or alias that matched
    score: int              # 0..100
    country: str
    program: str


def normalise(name: str) -> str:
    text = _NON_ALNUM.sub(" ", _APOSTROPHES.sub("", unidecode(name).casefold()))
    return " ".join(sorted(token for token in text.split() if token not in NOISE_WORDS))


class SanctionsList:
    """An immutable, indexed list; `screen` is cheap enough to run on every movement."""

    def __init__(self, entries: tuple[SanctionsEntry, ...] = (), source: str = "sanctions.csv") -> None:
        self.entries = entries
        self.source = source
        # One row per listed name or alias: (normalised, entry, the name as listed).
        self._names = [(normalise(n), entry, n) for entry in entries for n in (entry.name, *entry.aliases)]
        self._names = [row for row in self._names if row[0]]
        self._choices = [row[0] for row in self._names]
        self._by_token: dict[str, set[int]] = {}
        for index, normalised in enumerate(self._choices):
            for token in normalised.split():
                self._by_token.setdefault(token, set()).add(index)

    def __len__(self) -> int:
        return len(self.entries)

    def screen(self, name: str, threshold: int = DEFAULT_THRESHOLD) -> list[Match]:
        """Entries matching `name` at or above `threshold`, best first, one match per entry (its best name)."""
        query = normalise(name)
        if not query:
            return []
        scores = {index: 100 for index in self._containing(query)}
        for _, score, index in process.extract(query, self._choices, scorer=fuzz.token_sort_ratio,
                                               score_cutoff=threshold, limit=None):
            scores[index] = max(scores.get(index, 0), math.floor(score))
        best: dict[str, Match] = {}
        for index, score in scores.items():
            _, entry, listed = self._names[index]
            if score >= threshold and (entry.uid not in best or score > best[entry.uid].score):
                best[entry.uid] = Match(uid=entry.uid, listed_name=entry.name, matched_name=listed, score=score,
                                        country=entry.country, program=entry.program)
        return sorted(best.values(), key=lambda m: (-m.score, m.uid))

    def _containing(self, query: str) -> set[int]:
        """Listed names of two or more tokens whose every token is in the query."""
        tokens = set(query.split())
        candidates = set().union(*(self._by_token.get(t, set()) for t in tokens))
        return {i for i in candidates
                if len(words := self._choices[i].split()) >= 2 and tokens.issuperset(words)}


def load_sanctions(text: str, source: str = "sanctions.csv") -> SanctionsList:
    lines = [line if not line.lstrip().startswith("#") else "" for line in text.splitlines()]
    reader = csv.reader(io.StringIO("\n".join(lines)))
    entries: list[SanctionsEntry] = []
    header: list[str] | None = None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            if tuple(header) != COLUMNS:
                raise SanctionsError(source, reader.line_num, f"expected the header {','.join(COLUMNS)}")
            continue
        entries.append(_entry(row, source, reader.line_num, {e.uid for e in entries}))
    if header is None:
        raise SanctionsError(source, 1, f"empty list: expected the header {','.join(COLUMNS)}")
    return SanctionsList(tuple(entries), source)


def _entry(row: list[str], source: str, line: int, seen: set[str]) -> SanctionsEntry:
    if len(row) != len(COLUMNS):
        raise SanctionsError(source, line, f"expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), got {len(row)}")
    uid, name, aliases, country, program = (cell.strip() for cell in row)
    if not uid or not name:
        raise SanctionsError(source, line, "uid and name are required")
    if uid in seen:
        raise SanctionsError(source, line, f"duplicate uid {uid!r}")
    return SanctionsEntry(uid=uid, name=name, aliases=tuple(a.strip() for a in aliases.split(";") if a.strip()),
                          country=country.upper(), program=program)
