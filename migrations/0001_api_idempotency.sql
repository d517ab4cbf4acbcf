-- The API's idempotency keys: a retried POST with the same key returns the first command's result.
CREATE TABLE IF NOT EXISTS api_idempotency (
    idempotency_key text PRIMARY KEY,
    request_hash    text        NOT NULL,
    command_id      uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
