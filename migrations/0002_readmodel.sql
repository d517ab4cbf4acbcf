-- The PostgreSQL read model, derived from the event log by the postgres projection.
--
-- bank_create_readmodel(schema) creates the read model's tables in a schema: the live one is
-- `readmodel`; `bank projections rebuild postgres` fills `readmodel_rebuild` from offset 0 and swaps the
-- two by renaming schemas in one transaction. A later migration that changes the read model replaces
-- this function and alters `readmodel` the same way, so live and rebuilt models never differ.
CREATE OR REPLACE FUNCTION bank_create_readmodel(target text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', target);

    EXECUTE format($$CREATE TABLE IF NOT EXISTS %I.accounts (
        account_id              text        PRIMARY KEY,
        customer_id             text        NOT NULL,
        currency                char(3)     NOT NULL,
        balance                 bigint      NOT NULL,
        available_balance       bigint      NOT NULL,
        overdraft_limit         bigint      NOT NULL,
        status                  text        NOT NULL,
        version                 integer     NOT NULL,
        transfers_out_in_flight integer     NOT NULL,
        opened_at               timestamptz NOT NULL,
        updated_at              timestamptz NOT NULL
    )$$, target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS accounts_by_customer ON %I.accounts (customer_id, account_id)',
                   target);

    -- One row per posting (money moved on one account). Ordered per account by `sequence`, the account's
    -- version after the posting: unique and increasing, so keyset pagination never skips or repeats.
    EXECUTE format($$CREATE TABLE IF NOT EXISTS %I.transactions (
        posting_id              text        PRIMARY KEY,   -- the event id
        account_id              text        NOT NULL,
        sequence                integer     NOT NULL,
        type                    text        NOT NULL,
        amount                  bigint      NOT NULL,      -- signed minor units
        currency                char(3)     NOT NULL,
        balance_after           bigint      NOT NULL,
        counterparty_account_id text,
        reference               text,
        transfer_id             text,
        command_id              text        NOT NULL,
        correlation_id          text        NOT NULL,
        occurred_at             timestamptz NOT NULL,
        event_partition         integer     NOT NULL,
        event_offset            bigint      NOT NULL
    )$$, target);
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS transactions_by_account ON %I.transactions (account_id, sequence)',
                   target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS transactions_by_time ON %I.transactions (account_id, occurred_at)',
                   target);

    -- How far this schema reflects the event log; updated in the same transaction as the rows above.
    EXECUTE format($$CREATE TABLE IF NOT EXISTS %I.offsets (
        partition   integer     PRIMARY KEY,
        next_offset bigint      NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )$$, target);
END
$fn$;

SELECT bank_create_readmodel('readmodel');

-- Operational state of every projection (kept outside the swapped schemas: it survives a rebuild).
CREATE TABLE IF NOT EXISTS projection_status (
    projection    text PRIMARY KEY,
    last_error    text,
    last_error_at timestamptz
);

-- Events the postgres projection could not apply, with why. `bank projections retry` re-applies them.
CREATE TABLE IF NOT EXISTS projection_parked (
    projection      text        NOT NULL,
    event_partition integer     NOT NULL,
    event_offset    bigint      NOT NULL,
    schema_name     text,
    fingerprint     text,
    reason          text        NOT NULL,
    value           bytea,
    headers         jsonb       NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (projection, event_partition, event_offset)
);
