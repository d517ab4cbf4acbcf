"""The notifier: `python -m streams.notifications` (README, Notifications).

- `agent.py`: its own consumer group on bank.ledger.events and bank.audit; each batch becomes in-app
  notifications and queued emails and SMS in PostgreSQL (one transaction), then its offsets are committed.
- `sender.py`: delivers the queue (and the profile codes of the `outbox` table) with retries and backoff.
- `channels.py`: email over SMTP (aiosmtplib) and SMS through a provider adapter.
- `render.py` + `templates/`: the Jinja2 templates, one file per notification type, one block per channel.
"""
