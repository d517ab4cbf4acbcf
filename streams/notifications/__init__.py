"""The notifier: `python -m streams.notifications` (README, Notifications).

- `agent.py`: its own consumer group on bank.ledger.events, bank.audit, bank.standing-orders and bank.loans; each
  batch becomes in-app notifications and queued emails and SMS in PostgreSQL (one transaction), then its offsets are
  committed.
- `folds.py`: the standing orders, the loans and the loans' postings, folded from the beginning (whose order or loan
  a record is about, where an application stood, what a loan owes).
- `reminders.py`: loan instalments coming due, a periodic task of business time (ids from loan and instalment).
- `sender.py`: delivers the queue (and the profile codes of the `outbox` table) with retries and backoff.
- `channels.py`: email over SMTP (aiosmtplib) and SMS through a provider adapter.
- `render.py` + `templates/`: the Jinja2 templates, one file per notification type, one block per channel.
"""
