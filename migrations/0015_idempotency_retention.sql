-- The API's idempotency keys are kept for BANK_PROCESSED_RETENTION (api/idempotency.py), as the ledger keeps the
-- command ids it processed: the API deletes older keys every so often (by created_at), and follows a command by
-- its id (GET /v1/commands/{id}, who submitted it) without reading the whole table.
CREATE INDEX IF NOT EXISTS api_idempotency_created_at ON api_idempotency (created_at);
CREATE INDEX IF NOT EXISTS api_idempotency_command_id ON api_idempotency (command_id);
