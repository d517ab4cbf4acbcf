"""Notebook-style: load a day of bankstream's ledger events into a pandas DataFrame and compute its volumes.

    python examples/daily_volumes.py --bootstrap 127.0.0.1:19092 --registry http://127.0.0.1:18081 \
        [--day 2026-12-05] [--plot volumes.png] [--json]

Reads bank.ledger.events from the schema registry's wire format with examples/consumer.py (aiokafka, fastavro and
the registry; no bankstream code). Money stays in integer minor units of each currency (`total_minor`: cents for
EUR), as on the log. The plot needs matplotlib, which bankstream does not depend on: without it, no plot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd

from consumer import read_messages

EVENTS = "bank.ledger.events"
# The events that move money, and what an analyst calls them; a transfer counts once, on its debit.
MOVEMENTS = {"FundsDeposited": "deposit", "FundsWithdrawn": "withdrawal", "TransferDebited": "transfer"}


async def load_day(bootstrap: str, registry: str, day: date) -> pd.DataFrame:
    """One row per event that occurred on `day` (UTC): when, type, account, amount (minor units), currency."""
    start = datetime.combine(day, time(), UTC)
    rows = []
    # Kafka timestamps trail occurred_at by the processing time: start a minute early, filter on occurred_at.
    async for message in read_messages(bootstrap, registry, EVENTS, since=start - timedelta(minutes=1)):
        value = message.value
        rows.append({"occurred_at": value["occurred_at"], "type": message.type, "account_id": value["account_id"],
                     "amount": value.get("amount"), "currency": value.get("currency")})
    frame = pd.DataFrame(rows, columns=["occurred_at", "type", "account_id", "amount", "currency"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame["amount"] = frame["amount"].astype("Int64")     # integer minor units; missing for non-money events
    return frame[frame["occurred_at"].dt.date == day].reset_index(drop=True)


def daily_volumes(frame: pd.DataFrame) -> pd.DataFrame:
    """Per day, movement and currency: how many, and the total in minor units."""
    moves = frame[frame["type"].isin(MOVEMENTS)].assign(
        day=lambda f: f["occurred_at"].dt.date.astype(str), movement=lambda f: f["type"].map(MOVEMENTS))
    volumes = moves.groupby(["day", "movement", "currency"], as_index=False).agg(
        count=("amount", "size"), total_minor=("amount", "sum"))
    return volumes.astype({"count": "int64", "total_minor": "int64"})


def plot(volumes: pd.DataFrame, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    table = volumes.pivot_table(index="day", columns=["movement", "currency"], values="total_minor", aggfunc="sum")
    axes = table.plot(kind="bar", title="daily volumes (minor units)")
    axes.figure.tight_layout()
    plt.savefig(path)
    return True


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--registry", default="http://127.0.0.1:18081")
    parser.add_argument("--day", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--plot", metavar="PNG", help="save a bar chart here (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print the volumes as JSON lines")
    args = parser.parse_args(argv)
    events = await load_day(args.bootstrap, args.registry, args.day)
    volumes = daily_volumes(events)
    if args.json:
        for row in volumes.to_dict(orient="records"):
            print(json.dumps(row))
    else:
        print(f"{len(events)} events on {args.day}")
        print(volumes.to_string(index=False))
    if args.plot and not plot(volumes, args.plot):
        print("matplotlib is not installed: no plot", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
