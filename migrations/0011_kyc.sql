-- Customers as people (issue 18 points 2-6): identity verification (KYC), password reset tokens and erasure.
-- Personal data lives here and in profiles/users, never on a ledger, risk or payment topic.

-- A customer's identity verification: not_started -> pending (documents in, waiting for compliance) ->
-- verified | rejected. "Request more" sends the case back to the customer (not_started, with what is asked).
-- The sanctions screening of the customer's name is kept with it (the hits name listed entries, not the customer).
CREATE TABLE IF NOT EXISTS kyc_cases (
    customer_id   text        PRIMARY KEY,
    status        text        NOT NULL DEFAULT 'not_started'
                              CHECK (status IN ('not_started', 'pending', 'verified', 'rejected')),
    reason        text,                       -- the reviewer's reason (rejection) or what more is requested
    submitted_at  timestamptz,                -- when it last became pending: the age of a pending review
    decided_at    timestamptz,
    decided_by    uuid,
    screening     jsonb       NOT NULL DEFAULT '[]',   -- sanctions matches of the last screening
    screened_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS kyc_cases_queue ON kyc_cases (status, submitted_at);

-- Uploaded documents, in PostgreSQL (never on a topic). Type and size are checked before they get here.
CREATE TABLE IF NOT EXISTS kyc_documents (
    document_id   uuid        PRIMARY KEY,
    customer_id   text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('identity_document', 'proof_of_address')),
    content_type  text        NOT NULL CHECK (content_type IN ('application/pdf', 'image/png', 'image/jpeg')),
    size_bytes    integer     NOT NULL CHECK (size_bytes > 0),
    sha256        text        NOT NULL,
    content       bytea       NOT NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    uploaded_by   uuid
);
CREATE INDEX IF NOT EXISTS kyc_documents_customer ON kyc_documents (customer_id, uploaded_at);

-- Forgotten passwords: a single-use, short-lived token sent by email; only its SHA-256 is kept.
CREATE TABLE IF NOT EXISTS password_resets (
    token_hash    text        PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX IF NOT EXISTS password_resets_user ON password_resets (user_id);

-- Erased customers: the tombstone that remains (who, when, by whom; no personal data). The users row stays,
-- anonymised, so the customer id keeps naming one (erased) customer and can never be reused.
CREATE TABLE IF NOT EXISTS erasures (
    customer_id   text        PRIMARY KEY,
    user_id       uuid        NOT NULL,
    erased_at     timestamptz NOT NULL DEFAULT now(),
    erased_by     uuid        NOT NULL
);
