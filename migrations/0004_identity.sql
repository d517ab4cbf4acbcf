-- People who use the API: customers (self-registered; accounts reference their customer_id) and staff.
-- Passwords are argon2id hashes; recovery codes are SHA-256 hashes of random one-time codes. Sessions,
-- rate limits and lock-outs live in Redis (api/sessions.py).
CREATE TABLE IF NOT EXISTS users (
    user_id              uuid        PRIMARY KEY,
    email                text        NOT NULL,
    name                 text        NOT NULL,
    password_hash        text        NOT NULL,
    role                 text        NOT NULL CHECK (role IN ('customer', 'teller', 'analyst', 'admin')),
    -- Customers get one at registration and keep it; staff have none (a customer is never made staff).
    customer_id          text        UNIQUE,
    active               boolean     NOT NULL DEFAULT true,
    -- TOTP: the secret is set by /v1/auth/mfa/setup and only counts once /verify enabled it.
    mfa_secret           text,
    mfa_enabled          boolean     NOT NULL DEFAULT false,
    -- The last TOTP time step accepted, so an intercepted code cannot be replayed within its window.
    totp_last_step       bigint,
    recovery_codes       text[]      NOT NULL DEFAULT '{}',
    must_change_password boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_customer_id_iff_customer CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);

-- One account per email, whatever its case.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower ON users (lower(email));
CREATE INDEX IF NOT EXISTS users_role ON users (role, created_at);

-- Who submitted each API command (the customer whose account it acts on), so a customer can follow the status
-- of their own command before the ledger has decided it, and nobody else's.
ALTER TABLE api_idempotency ADD COLUMN IF NOT EXISTS customer_id text;
