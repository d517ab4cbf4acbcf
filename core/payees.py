"""Confirmation of payee: does the name a customer gives for a payee match the holder of the account?

Only for IBANs of this bank (we know the holder); another bank's IBAN is `not_applicable`. The rule:

* both names are normalised: Unicode NFKD with the combining marks dropped (diacritics: "José" is "Jose"),
  casefolded, every run of characters that are not letters or digits turned into one space, trimmed;
* `match`: the normalised names are equal;
* `close_match`: not equal, but the same words in another order ("Smith John"), or difflib's similarity ratio
  of the normalised names is at least CLOSE_MATCH_RATIO (a typo, a missing letter, an initial): the customer is
  shown the name on file, to correct theirs;
* `no_match`: anything else. The name on file is not shown: it would let anyone learn who holds an IBAN.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from fractions import Fraction
from typing import Literal

Confirmation = Literal["match", "close_match", "no_match", "not_applicable"]
CONFIRMATIONS: tuple[Confirmation, ...] = ("match", "close_match", "no_match", "not_applicable")

# 0.85: "Jon Smith" for "John Smith" (0.95) or "John Smyth" (0.9) is close; "Jane Smith" (0.8) is not: another
# first name is another person as far as the payer can tell, and "J Smith" (0.82) names too many people.
CLOSE_MATCH_RATIO = Fraction(85, 100)

_SEPARATORS = re.compile(r"[^0-9a-z]+")


def normalise_name(name: str) -> str:
    """The name as the comparison sees it: no diacritics, casefolded, words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(character for character in decomposed if not unicodedata.combining(character))
    return _SEPARATORS.sub(" ", bare.casefold()).strip()


def similarity(given: str, on_file: str) -> Fraction:
    """difflib's ratio of the two normalised names (2 × matching characters / all characters), 0 to 1: as an
    exact fraction, so the threshold is not at the mercy of a float's rounding (and core/ names no floats)."""
    left, right = normalise_name(given), normalise_name(on_file)
    if not left and not right:
        return Fraction(1)
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    matching = sum(block.size for block in matcher.get_matching_blocks())
    return Fraction(2 * matching, len(left) + len(right))


def confirm_name(given: str, on_file: str) -> Confirmation:
    """The outcome of comparing the name the customer gave with the account holder's (see the module's rule)."""
    left, right = normalise_name(given), normalise_name(on_file)
    if left == right:
        return "match"
    if sorted(left.split()) == sorted(right.split()) or similarity(given, on_file) >= CLOSE_MATCH_RATIO:
        return "close_match"
    return "no_match"
