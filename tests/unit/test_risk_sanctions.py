"""Sanctions screening: exact, alias, accented and reordered names match; near misses below the threshold do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.risk.sanctions import DEFAULT_THRESHOLD, SanctionsError, load_sanctions, normalise

ROOT = Path(__file__).resolve().parents[2]
LIST = load_sanctions((ROOT / "rules" / "sanctions.csv").read_text(encoding="utf-8"), "rules/sanctions.csv")


def best(name: str, threshold: int = DEFAULT_THRESHOLD) -> tuple[str, str, int] | None:
    matches = LIST.screen(name, threshold)
    return (matches[0].uid, matches[0].matched_name, matches[0].score) if matches else None


def test_the_sample_list_loads_with_aliases() -> None:
    assert len(LIST) == 8
    entry = next(e for e in LIST.entries if e.uid == "SAMPLE-1007")
    assert entry.name == "Ivanov, Sergei Petrovich" and entry.aliases == ("Sergey Ivanov", "Serge Ivanoff")


def test_normalisation_transliterates_casefolds_and_sorts() -> None:
    assert normalise("Dr. Núñez-Álvarez, José") == "alvarez jose nunez"
    assert normalise("  O'Brien   &  Sons LTD ") == "obrien sons"
    assert normalise("Zoë Đorđević") == "dordevic zoe"
    assert normalise("Mr.") == ""


@pytest.mark.parametrize(("name", "uid", "matched"), [
    ("José Álvarez Núñez", "SAMPLE-1001", "José Álvarez Núñez"),          # exact
    ("JOSE ALVAREZ NUNEZ", "SAMPLE-1001", "José Álvarez Núñez"),          # accents and case
    ("Núñez, José Álvarez", "SAMPLE-1001", "José Álvarez Núñez"),         # reordered
    ("Pepe Alvarez", "SAMPLE-1001", "Pepe Alvarez"),                      # alias
    ("Zoe Dordevic", "SAMPLE-1002", "Zoë Đorđević"),                      # transliteration
    ("Mr. Sergei Petrovich Ivanov", "SAMPLE-1007", "Ivanov, Sergei Petrovich"),   # title dropped
    ("Golden Lotus Trading Co", "SAMPLE-1005", "Golden Lotus Trading Co. Ltd."),  # legal form dropped
    ("José Antonio Álvarez Núñez", "SAMPLE-1001", "José Álvarez Núñez"),  # an extra middle name
])
def test_exact_alias_and_normalised_names_score_100(name: str, uid: str, matched: str) -> None:
    assert best(name) == (uid, matched, 100)


@pytest.mark.parametrize(("name", "uid"), [
    ("Ahmad Karimy Tehrani", "SAMPLE-1004"),    # one letter off the listed spelling
    ("Sergei Ivanov", "SAMPLE-1007"),            # close to the alias "Sergey Ivanov"
    ("Jurgen Muler-Weiss", "SAMPLE-1003"),       # a typo after transliteration
])
def test_fuzzy_matches_at_or_above_the_threshold(name: str, uid: str) -> None:
    result = best(name)
    assert result is not None and result[0] == uid and DEFAULT_THRESHOLD <= result[2] < 100


@pytest.mark.parametrize("name", [
    "Jose Alvarez",          # only part of a listed name: 80
    "Sergei Petrov",
    "Ali",
    "Golden Lotus",          # 2 of 3 tokens
    "",
    "Dr.",
])
def test_near_misses_below_the_threshold_do_not_match(name: str) -> None:
    assert best(name) is None


def test_the_threshold_is_configurable() -> None:
    assert best("Jose Alvarez") is None
    assert best("Jose Alvarez", threshold=80) == ("SAMPLE-1001", "José Álvarez Núñez", 80)
    assert best("Ahmad Karimy Tehrani", threshold=100) is None


def test_one_match_per_entry_best_first() -> None:
    matches = LIST.screen("Juergen Mueller")
    assert [(m.uid, m.score) for m in matches] == [("SAMPLE-1003", 100)]
    assert matches[0].program == "SAMPLE-PROLIF" and matches[0].country == "DE"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("uid,name\nX,Y\n", 1, "expected the header"),
    ("uid,name,aliases,country,program\nS1,,,,P\n", 2, "uid and name are required"),
    ("uid,name,aliases,country,program\nS1,A B,,XX,P\n# note\nS1,C D,,XX,P\n", 4, "duplicate uid"),
    ("uid,name,aliases,country,program\nS1,A B,XX,P\n", 2, "expected 5 columns"),
    ("# nothing\n", 1, "empty list"),
])
def test_malformed_lists_are_refused_with_their_line(text: str, line: int, words: str) -> None:
    with pytest.raises(SanctionsError) as error:
        load_sanctions(text, "list.csv")
    assert error.value.line == line and str(error.value).startswith(f"list.csv:{line}: ") and words in str(error.value)
