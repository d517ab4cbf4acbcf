"""The built-in credit scorer: what the log knows about a customer, and a bureau's score, into a score the reviewer
reads. Pure: ledger events in (`CreditHistory`), an assessment out (`assess`).

Inputs, per customer, from bank.ledger.events (every account the customer holds, any currency, amounts summed in
their own minor units: a scorer for a multi-currency bank would convert them first):
- `inflows`: money credited (deposits, transfers and payments in), and how many credits (`credits`);
- `balance`: what the accounts hold now; `lowest_balance`: the lowest any posting left one at;
- `overdraft_postings`: postings that left an account below zero;
- `loans_outstanding`: principal of loans disbursed and not repaid; `loans_in_arrears`: the caller's (from the
  loan fold: the log's ledger does not know due dates).

The score, 0..100 (documented in the README's "Loans: credit assessment"):
- the bureau's score (300..850) gives up to 60 points, linearly; no bureau file gives 30;
- regular money coming in: 10 points with at least 3 credits, 10 more when inflows are at least 3 instalments;
- no overdraft use: 10 points; a balance of at least one instalment: 10 points;
- minus 15 per bureau default, 10 per loan outstanding here, 25 per loan in arrears.
Recommendation: 60 and up approve, 40..59 refer (a person decides anyway; this only orders the queue), below
40 decline. Staff always decide: the recommendation never approves or rejects by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import events as e

APPROVE_FROM, REFER_FROM = 60, 40
_CREDITS = (e.FundsDeposited, e.TransferCredited, e.PaymentReceived)


@dataclass(slots=True)
class CustomerFacts:
    accounts: dict[str, int] = field(default_factory=dict)     # account id -> balance
    inflows: int = 0
    credits: int = 0
    lowest_balance: int = 0
    overdraft_postings: int = 0
    loans_outstanding: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class CreditHistory:
    """Per customer, folded from the ledger's events. Idempotent by event id."""

    customers: dict[str, CustomerFacts] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)         # account id -> customer id
    _seen: set[str] = field(default_factory=set)

    def apply(self, event: object) -> None:
        if not isinstance(event, e.Event) or event.event_id in self._seen:
            return
        if isinstance(event, e.AccountOpened):
            self._seen.add(event.event_id)
            self.owner[event.account_id] = event.customer_id
            self.customers.setdefault(event.customer_id, CustomerFacts()).accounts.setdefault(event.account_id, 0)
            return
        customer = self.owner.get(event.account_id)
        balance_after = getattr(event, "balance_after", None)
        if customer is None or balance_after is None or type(event) not in e.POSTING_SIGN:
            return
        self._seen.add(event.event_id)
        facts = self.customers[customer]
        facts.accounts[event.account_id] = balance_after
        facts.lowest_balance = min(facts.lowest_balance, balance_after)
        facts.overdraft_postings += balance_after < 0
        if isinstance(event, _CREDITS):
            facts.inflows += event.amount
            facts.credits += 1
        if isinstance(event, e.LoanDisbursed):
            facts.loans_outstanding[event.loan_id] = event.principal
        elif isinstance(event, e.LoanRepaid):
            facts.loans_outstanding[event.loan_id] = event.outstanding_principal

    def facts(self, customer_id: str) -> CustomerFacts:
        return self.customers.get(customer_id) or CustomerFacts()


@dataclass(frozen=True, slots=True)
class CreditScore:
    score: int
    recommendation: str
    reasons: list[str]
    inputs: dict[str, int]


def assess(facts: CustomerFacts, instalment: int, bureau_score: int | None, bureau_defaults: int,
           loans_in_arrears: int) -> CreditScore:
    """The bank's score of an application whose regular instalment is `instalment` minor units."""
    balance = sum(facts.accounts.values())
    outstanding = sum(1 for principal in facts.loans_outstanding.values() if principal > 0)
    inputs = {"inflows": facts.inflows, "credits": facts.credits, "balance": balance,
              "lowest_balance": facts.lowest_balance, "overdraft_postings": facts.overdraft_postings,
              "loans_outstanding": outstanding, "loans_in_arrears": loans_in_arrears, "instalment": instalment,
              "bureau_defaults": bureau_defaults}
    reasons: list[str] = []
    if bureau_score is None:
        points = 30
        reasons.append("no credit bureau file")
    else:
        points = round(60 * (min(max(bureau_score, 300), 850) - 300) / 550)
        reasons.append(f"credit bureau score {bureau_score}")
    if facts.credits >= 3:
        points += 10
        reasons.append("regular money coming in")
    if instalment and facts.inflows >= 3 * instalment:
        points += 10
        reasons.append("inflows cover three instalments")
    if facts.overdraft_postings == 0:
        points += 10
    else:
        reasons.append(f"{facts.overdraft_postings} posting(s) into overdraft")
    if balance >= instalment:
        points += 10
    else:
        reasons.append("balance below one instalment")
    penalties = ((bureau_defaults, 15, "default(s) at the bureau"), (outstanding, 10, "loan(s) outstanding here"),
                 (loans_in_arrears, 25, "loan(s) in arrears here"))
    for count, weight, words in penalties:
        if count:
            points -= count * weight
            reasons.append(f"{count} {words}")
    score = max(0, min(100, points))
    recommendation = "approve" if score >= APPROVE_FROM else "refer" if score >= REFER_FROM else "decline"
    return CreditScore(score, recommendation, reasons, inputs)
