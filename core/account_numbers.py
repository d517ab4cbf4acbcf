"""Account numbers people can use: a national account number and an IBAN for every customer account.

How a number is chosen, and why it is unique by construction:

* The API allocates it when a customer account is opened and carries it on the OpenAccount command; the ledger
  copies it onto AccountOpened. The log is the record: a replay, a rebuild or another API instance reads the
  number the account was given, never recomputes it (so a change of these rules re-numbers nothing).
* The allocation draws a serial from one PostgreSQL sequence (migrations/0006_account_numbers.sql) and maps it
  with `number_of_serial`: a bijection of the serials 1..allocated_range-1 onto the national number's body, then one
  check digit. Two serials never give one number, and a sequence never hands out a serial twice, so two accounts
  never share a number, across every API instance. The allocation table's UNIQUE constraint checks it all the
  same (the allocator draws the next serial should it ever fire), and keys the allocation by account id, so a
  retried request (same idempotency key, same account id) gets the same number.
* A hash of the account id cannot do this: a German account number has 10 digits, so 100,000 hashed accounts
  would already share numbers (the birthday bound). Hashing is kept only for accounts whose opening carries no
  number (opened before numbering existed, or written to the log by a producer other than the API): for display
  they get `legacy_number(account_id)`, in a range allocation never uses (body starting with 9), so such a
  number can never be an allocated one. Two of those could share a number; the API's view refuses to resolve a
  shared one (core/account_numbers has no say in that: see api/ledger_view.py).
* The serials are spread over the number range by multiplying with a constant prime to the range's size (a
  permutation, not a secret), so consecutive accounts do not get neighbouring numbers. The last digit is a check
  digit: the Luhn digit, or whichever digit the national method of the configured bank code (schwifty knows
  the Bundesbank's methods) accepts. A body for which no digit is accepted is skipped.

The IBAN is built with schwifty from the country and bank code of the settings (BANK_IBAN_COUNTRY,
BANK_IBAN_BANK_CODE) and the national number; its two check digits are ISO 7064 mod 97-10.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

from schwifty import IBAN, registry
from schwifty.domain import Component
from schwifty.exceptions import NationalChecksumNotVerified, SchwiftyException

from core.settings import Settings

# A permutation multiplier: prime to every allocated range this module builds (its size is 9 * 10**k, whose
# prime factors are 2, 3 and 5), so serial -> serial * SPREAD mod size is a bijection.
SPREAD = 623_071_817
# The bank code's method must accept a check digit for most bodies: the allocator skips a serial whose body takes
# none (drawing the next), and a legacy number moves on to the next body, at most this many times.
MAX_SKIPPED_BODIES = 100


class InvalidIban(ValueError):
    """Text that is not a valid IBAN (structure, length, check digits), with schwifty's reason."""


class NumberingError(ValueError):
    """Settings that cannot number accounts (an unknown country, a bank code of the wrong shape), or no more
    numbers to allocate."""


@dataclass(frozen=True, slots=True)
class Iban:
    """An IBAN in both forms: machine (`DE89370400440532013000`) and formatted in blocks of four."""

    machine: str
    formatted: str
    country: str
    bank_code: str
    account_number: str


@dataclass(frozen=True, slots=True)
class AccountNumbering:
    """The bank's numbering: its IBAN country and bank code, and the national account number's length there."""

    country: str
    bank_code: str
    length: int   # digits of the national account number (10 in Germany)

    @classmethod
    def of(cls, settings: Settings) -> AccountNumbering:
        return cls.for_bank(settings.iban_country, settings.iban_bank_code)

    @classmethod
    def for_bank(cls, country: str, bank_code: str) -> AccountNumbering:
        """Refuses (NumberingError) a country or bank code it cannot build valid IBANs with."""
        try:
            spec = registry.get_iban_spec(country)
        except (SchwiftyException, KeyError):
            raise NumberingError(f"BANK_IBAN_COUNTRY {country!r}: no IBAN format is known for it") from None
        span = spec.positions.get(Component.ACCOUNT_CODE)
        length = span.length if span is not None else 0
        bank_span, branch_span = (spec.positions.get(part) for part in (Component.BANK_CODE, Component.BRANCH_CODE))
        if bank_span is None or len(bank_code) != bank_span.length or (branch_span and not branch_span.is_empty):
            # An exact length: schwifty would pad a short code with zeros, and then no IBAN would look like ours.
            raise NumberingError(f"BANK_IBAN_BANK_CODE {bank_code!r}: {country} bank codes have "
                                 f"{bank_span.length if bank_span else 0} characters (countries with branch codes "
                                 f"are not supported)")
        if length < 4 or not spec.bban_spec.endswith(f"{length}!n"):
            raise NumberingError(f"BANK_IBAN_COUNTRY {country!r}: its BBAN does not end in a numeric account "
                                 f"number ({spec.bban_spec}), which this numbering needs")
        numbering = cls(country=country, bank_code=bank_code, length=length)
        try:
            numbers = [n for n in map(numbering.number_of_serial, range(1, MAX_SKIPPED_BODIES)) if n is not None]
            numbering.iban(numbers[0] if numbers else "")
        except (SchwiftyException, InvalidIban) as error:
            raise NumberingError(f"BANK_IBAN_BANK_CODE {bank_code!r} for {country}: {error}") from None
        if len(numbers) < MAX_SKIPPED_BODIES // 2:
            raise NumberingError(f"BANK_IBAN_BANK_CODE {bank_code!r}: its national check-digit method accepts a "
                                 f"last digit for only {len(numbers)} of {MAX_SKIPPED_BODIES - 1} account numbers; "
                                 f"this numbering needs a method that checks the last digit")
        return numbering

    # ------------------------------------------------------------ numbers

    @property
    def allocated_range(self) -> int:
        """How many bodies allocation uses: those not starting with 9 (9 * 10**(length - 2))."""
        return int(9 * 10 ** (self.length - 2))   # int(): mypy types a power with an int exponent as Any

    def number_of_serial(self, serial: int) -> str | None:
        """The number of exactly this serial, or None when its body takes no check digit (the serial is skipped).
        Serials 1..allocated_range-1 map to distinct bodies below 9 * 10**(length - 2)."""
        if not 0 < serial < self.allocated_range:
            raise NumberingError(f"serial {serial} is outside 1..{self.allocated_range - 1}: account numbers "
                                 f"are exhausted")
        return self._with_check_digit(self.body_of_serial(serial))

    def body_of_serial(self, serial: int) -> int:
        """The number without its check digit: serial * SPREAD mod allocated_range, a permutation of the range."""
        return (serial * SPREAD) % self.allocated_range

    def legacy_number(self, account_id: str) -> str:
        """The display number of an account whose opening carries none: a hash of its id into the range
        allocation never uses (bodies starting with 9). Not unique: see the module's docstring."""
        digest = int.from_bytes(hashlib.sha256(account_id.encode()).digest()[:8], "big")
        span = 10 ** (self.length - 2)
        for step in range(MAX_SKIPPED_BODIES):
            number = self._with_check_digit(self.allocated_range + (digest + step) % span)
            if number is not None:
                return number
        raise NumberingError(f"bank code {self.bank_code}: no check digit for account {account_id}")

    def _with_check_digit(self, body: int) -> str | None:
        """The body (length - 1 digits) and the first check digit the bank's method accepts: Luhn's first."""
        text = f"{body:0{self.length - 1}d}"
        luhn = _luhn_digit(text)
        for digit in (luhn, *(d for d in range(10) if d != luhn)):
            number = f"{text}{digit}"
            if self._valid(number):
                return number
        return None

    def _valid(self, number: str) -> bool:
        try:
            with warnings.catch_warnings():
                # A country whose national check digits schwifty cannot verify: the IBAN's own are checked.
                warnings.simplefilter("ignore", NationalChecksumNotVerified)
                IBAN.generate(self.country, self.bank_code, number).validate(validate_bban=True)
        except SchwiftyException:
            return False
        return True

    # ------------------------------------------------------------ IBANs

    def iban(self, account_number: str) -> Iban:
        """The IBAN of one of our account numbers."""
        try:
            value = IBAN.generate(self.country, self.bank_code, account_number)
        except SchwiftyException as error:
            raise InvalidIban(f"account number {account_number!r}: {error}") from None
        return _iban_of(value)

    def parse(self, text: str) -> Iban:
        """Any valid IBAN (ours or another bank's), spaces and lower case allowed; InvalidIban otherwise."""
        compact = "".join(text.split()).upper()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NationalChecksumNotVerified)
                value = IBAN(compact, validate_bban=True)
        except SchwiftyException as error:
            raise InvalidIban(str(error) or type(error).__name__) from None
        return _iban_of(value)

    def is_ours(self, iban: Iban) -> bool:
        return iban.country == self.country and iban.bank_code == self.bank_code


def _iban_of(value: IBAN) -> Iban:
    return Iban(machine=value.compact, formatted=value.formatted, country=value.country_code,
                bank_code=value.bank_code, account_number=value.account_code)


def _luhn_digit(body: str) -> int:
    """The check digit of ISO/IEC 7812 (the Bundesbank's method 00 for a 10-digit account number)."""
    total = 0
    for position, char in enumerate(reversed(body)):
        doubled = int(char) * (2 if position % 2 == 0 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return (10 - total % 10) % 10
