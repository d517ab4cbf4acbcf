"""Prometheus metrics of the notifier (served on its /metrics; Grafana "Notifications", prometheus/alerts.yml)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENT = Counter("bank_notifications_sent_total", "Notifications delivered, by channel (in_app: written to the "
               "inbox; email: accepted by the SMTP server; sms: accepted by the provider)", ["channel"])
FAILED = Counter("bank_notifications_failed_total", "Notifications given up on after their last retry or refused "
                 "by the provider, by channel", ["channel"])
ATTEMPTS_FAILED = Counter("bank_notification_attempts_failed_total", "Delivery attempts that failed and will be "
                          "retried, by channel", ["channel"])
PENDING = Gauge("bank_notifications_pending", "Notifications queued and not yet delivered (held by quiet hours "
                "included), by channel", ["channel"])
OLDEST_PENDING = Gauge("bank_notifications_oldest_pending_age_seconds", "Age of the oldest queued notification "
                       "that is due (not held by quiet hours), by channel", ["channel"])
SKIPPED = Counter("bank_notifier_records_skipped_total", "Log records the notifier could not handle and skipped")
BATCH_SECONDS = Histogram("bank_notifier_batch_seconds", "Time to turn one batch of records into notifications",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
