"""One scoring step, shared by the stream agent and the back-test so both judge history the same way.

A movement is evaluated against the features *before* it, then folded in unless it was blocked (a blocked
movement moved no money). A held movement is folded in: it was attempted, and it will usually post.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import commands as c
from core.risk.evaluate import Assessment, evaluate
from core.risk.features import AccountFeatures, CustomerFeatures, Movement
from core.risk.rules import RuleSet
from core.risk.sanctions import SanctionsList


@dataclass(frozen=True, slots=True)
class Scored:
    assessment: Assessment
    account: AccountFeatures     # the features after the movement
    customer: CustomerFeatures


def movement_of(command: c.Command, customer_id: str) -> Movement | None:
    """The movement a customer command asks for, or None for commands that move no money."""
    match command:
        case c.Deposit():
            kind, channel, counterparty, payee_added_at = "deposit", command.channel, None, None
        case c.Withdraw():
            kind, channel, counterparty, payee_added_at = "withdrawal", command.channel, None, None
        case c.Transfer():
            kind, channel, counterparty = "transfer_out", "transfer", command.to_account_id
            payee_added_at = command.payee_added_at
        case c.Payment():
            # Scored as a transfer out (velocity, amounts, new payee by IBAN, sanctions on the creditor's name).
            kind, channel, counterparty, payee_added_at = "transfer_out", "transfer", command.creditor_iban, None
        case _:
            return None
    return Movement(kind=kind, account_id=command.account_id, customer_id=customer_id,  # type: ignore[arg-type]
                    amount=command.amount, currency=command.currency, at=command.issued_at, channel=channel,
                    counterparty_account_id=counterparty, counterparty_name=command.counterparty_name,
                    counterparty_country=command.counterparty_country, payee_added_at=payee_added_at)


def score(movement: Movement, account: AccountFeatures | None, customer: CustomerFeatures | None,
          rule_set: RuleSet, sanctions: SanctionsList) -> Scored:
    account = account or AccountFeatures(account_id=movement.account_id)
    customer = customer or CustomerFeatures(customer_id=movement.customer_id)
    assessment = evaluate(rule_set, movement, account, customer, sanctions)
    if assessment.action == "block":
        return Scored(assessment, account, customer)
    return Scored(assessment, account.observe(movement), customer.observe(movement))
