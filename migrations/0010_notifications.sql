-- Notifications (issue 19): the notifier (streams/notifications/) folds the ledger and the audit log into these
-- tables; the API reads the inbox and keeps the preferences. Personal data (addresses) is copied here from users
-- and profiles when a message is queued, never put on a topic.

-- Each user's choices (core/notifications.py parse_preferences; defaults when there is no row).
CREATE TABLE IF NOT EXISTS notification_preferences (
    user_id     uuid        PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    preferences jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Whose account is whose, folded by the notifier from AccountOpened (it must not wait for another read model).
CREATE TABLE IF NOT EXISTS notify_accounts (
    account_id  text PRIMARY KEY,
    customer_id text NOT NULL,
    currency    text NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_accounts_customer ON notify_accounts (customer_id);

-- Devices each user has signed in from (a sign-in from another one is notified).
CREATE TABLE IF NOT EXISTS notify_devices (
    user_id    uuid        NOT NULL,
    device     text        NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device)
);

-- The in-app inbox. `seq` counts per user (notify_inbox_seq, taken under the user's row lock, so a user's rows
-- commit in seq order): the SSE stream's event id, resumed from Last-Event-ID without loss or repeat.
CREATE TABLE IF NOT EXISTS notify_inbox_seq (
    user_id  uuid   PRIMARY KEY,
    last_seq bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    notification_id text        PRIMARY KEY,            -- derived from (event, recipient, channel)
    user_id         uuid        NOT NULL,
    seq             bigint      NOT NULL,
    kind            text        NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    source          text        NOT NULL,               -- topic/partition/offset of the record it came from
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz,
    UNIQUE (user_id, seq)
);
CREATE INDEX IF NOT EXISTS notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

-- Email and SMS to send: one row per (event, recipient, channel), so a replay inserts nothing and a message is
-- sent once. pending -> sent, or -> failed after the last retry. `not_before` (business time) holds an SMS
-- during the recipient's quiet hours.
CREATE TABLE IF NOT EXISTS notification_outbox (
    notification_id text        PRIMARY KEY,
    user_id         uuid,
    channel         text        NOT NULL CHECK (channel IN ('email', 'sms')),
    kind            text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL DEFAULT '',
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    not_before      timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    provider_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS notification_outbox_due ON notification_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notification_outbox_failed ON notification_outbox (created_at) WHERE status = 'failed';
