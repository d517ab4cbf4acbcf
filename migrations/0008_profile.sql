-- A person's profile (api/routes/profile.py): personal data, kept here and never on a ledger topic. The email
-- stays in users (its uniqueness is users.email_key); the name given at registration is the default legal name.
CREATE TABLE IF NOT EXISTS profiles (
    user_id       uuid        PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    legal_name    text,
    date_of_birth date,
    address_lines text[]      NOT NULL DEFAULT '{}',
    postcode      text,
    city          text,
    country       text        CHECK (country ~ '^[A-Z]{2}$'),
    phone         text        CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),   -- E.164
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A new email or phone waits here until the code sent to it comes back. One pending change per user and
-- channel: a new request replaces the last. The code is kept only as an HMAC keyed by the change id.
CREATE TABLE IF NOT EXISTS contact_changes (
    change_id   uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    channel     text        NOT NULL CHECK (channel IN ('email', 'phone')),
    new_value   text        NOT NULL,
    code_hash   text        NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    UNIQUE (user_id, channel)
);

-- Messages to people (codes today; issue 19's notification work delivers them by email and SMS). Until a
-- sender exists, a row here is the delivery.
CREATE TABLE IF NOT EXISTS outbox (
    message_id   uuid        PRIMARY KEY,
    user_id      uuid        REFERENCES users (user_id) ON DELETE CASCADE,
    channel      text        NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient    text        NOT NULL,
    purpose      text        NOT NULL,
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (created_at) WHERE delivered_at IS NULL;
