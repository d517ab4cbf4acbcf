"""KYC tiers on the ledger: the receive limit of an unverified customer's accounts (core/kyc.py).

The API sets it when an account opens (OpenAccount.receive_limit) and moves it when the customer's verification
changes (SetReceiveLimit to each of their accounts, on the customers' path through the risk agent, so it keeps its
place among the customer's commands); the ledger refuses credits past it (`kyc_limit`). The API also checks a
deposit against it before the command is sent, for a quick answer; the ledger's decision is the one that holds.
"""

from __future__ import annotations

from api.deps import Platform
from core import commands as c
from core import kyc
from core.commands import derive_id
from core.kyc import KycStatus
from core.money import amounts_per_currency
from core.settings import Settings


def receive_limit_for(settings: Settings, status: KycStatus | None, currency: str) -> int | None:
    """The limit an account of a customer with this KYC status gets; None: none (verified, or tiers off)."""
    if not settings.kyc_tiers or kyc.tier(status) == "verified":
        return None
    return amounts_per_currency(settings.kyc_unverified_receive_limit, settings.kyc_unverified_receive_limits,
                                "BANK_KYC_UNVERIFIED_RECEIVE_LIMIT(S)")[currency]


async def apply_tier(platform: Platform, customer_id: str, status: KycStatus) -> int:
    """Set every open account of the customer to its tier's limit where it differs; how many changed."""
    now = platform.time.now()
    changed = 0
    for account in list(platform.view.accounts.values()):
        if account.customer_id != customer_id or account.status == "closed":
            continue
        limit = receive_limit_for(platform.settings, status, account.currency)
        if limit == account.receive_limit:
            continue
        command_id = derive_id("receive-limit", account.account_id, str(limit), now.isoformat())
        await platform.bus.send(c.SetReceiveLimit(command_id=command_id, account_id=account.account_id, issued_at=now,
                                                  correlation_id=command_id, receive_limit=limit,
                                                  currency=account.currency, reason=f"kyc {status}"), customer_id)
        changed += 1
    return changed
