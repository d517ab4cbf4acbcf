-- Risk cases in the PostgreSQL read model (issue 4: fraud and AML scoring).
--
-- * accounts.holds: the movements held for review, as core.ledger.AccountState.holds (case id -> hold). The
--   projection rebuilds each account's state from its row every batch, and available_balance depends on
--   the holds, so they are stored with it.
-- * transactions.channel: cash | transfer | card (FundsDeposited/FundsWithdrawn.channel; transfers are
--   "transfer"). The currency transaction report sums cash postings.
-- * cases: one row per flagged money movement (RiskFlagged or FundsHeld; case id = the flagged command's
--   id), decided by CaseReviewed. The admin API's case queue and SAR report read it.
--
-- bank_create_readmodel(schema) is replaced so rebuilt schemas get the new shape, and the live schema
-- `readmodel` is altered the same way. New columns go last in CREATE TABLE, where ADD COLUMN puts them in
-- the live schema, so a live and a rebuilt model have the same columns in the same order (and compare equal).
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
        updated_at              timestamptz NOT NULL,
        holds                   jsonb       NOT NULL DEFAULT '{}'::jsonb   -- case id -> held movement
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
        event_offset            bigint      NOT NULL,
        channel                 text        NOT NULL DEFAULT 'transfer'   -- events before channels: transfer
    )$$, target);
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS transactions_by_account ON %I.transactions (account_id, sequence)',
                   target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS transactions_by_time ON %I.transactions (account_id, occurred_at)',
                   target);
    -- The currency transaction report: a day's cash postings across all accounts.
    EXECUTE format($$CREATE INDEX IF NOT EXISTS transactions_cash_by_time ON %I.transactions (occurred_at)
                     WHERE channel = 'cash'$$, target);

    -- Risk cases. Newest first is (created_at, case_id) descending: every filter's index ends with both, so
    -- a page of the queue is an index range scan, and the keyset cursor never skips or repeats a row.
    EXECUTE format($$CREATE TABLE IF NOT EXISTS %I.cases (
        case_id              text        PRIMARY KEY,    -- the flagged command's id
        account_id           text        NOT NULL,
        customer_id          text        NOT NULL,
        command_type         text        NOT NULL,       -- Deposit | Withdraw | Transfer
        amount               bigint      NOT NULL,       -- minor units, positive
        currency             char(3)     NOT NULL,
        channel              text        NOT NULL,
        to_account_id        text,
        counterparty_name    text,
        counterparty_country text,
        reference            text,
        action               text        NOT NULL,       -- alert | hold | block
        score                integer     NOT NULL,
        severity             text,                       -- the most severe of the hits' (low < ... < critical)
        rule_ids             text[]      NOT NULL,
        kinds                text[]      NOT NULL,       -- distinct rule kinds hit, in rule-set order
        hits                 jsonb       NOT NULL,       -- [{rule_id, kind, action, severity, score, reason}]
        rule_set_version     text        NOT NULL,
        status               text        NOT NULL,       -- open | held | blocked | approved | rejected
        created_at           timestamptz NOT NULL,       -- when the ledger flagged it
        decided_at           timestamptz,
        reviewer             text,
        comment              text,
        decision_event_id    text,                       -- the CaseReviewed event: a decision applies once
        correlation_id       text        NOT NULL,       -- the flagged command's: its outcome's id
        flag_event_id        text        NOT NULL,       -- the RiskFlagged or FundsHeld event
        issued_at            timestamptz NOT NULL        -- when the customer asked for the movement
    )$$, target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_time ON %I.cases (created_at, case_id)', target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_status ON %I.cases (status, created_at, case_id)', target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_severity ON %I.cases (severity, created_at, case_id)',
                   target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_account ON %I.cases (account_id, created_at, case_id)',
                   target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_customer ON %I.cases (customer_id, created_at, case_id)',
                   target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_rule ON %I.cases USING gin (rule_ids)', target);
    EXECUTE format('CREATE INDEX IF NOT EXISTS cases_by_kind ON %I.cases USING gin (kinds)', target);

    -- How far this schema reflects the event log; updated in the same transaction as the rows above.
    EXECUTE format($$CREATE TABLE IF NOT EXISTS %I.offsets (
        partition   integer     PRIMARY KEY,
        next_offset bigint      NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )$$, target);
END
$fn$;

-- The live schema: the new columns (constant defaults, so no table rewrite), then the function creates
-- what is missing (the cases table, the new indexes).
ALTER TABLE readmodel.accounts ADD COLUMN IF NOT EXISTS holds jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE readmodel.transactions ADD COLUMN IF NOT EXISTS channel text NOT NULL DEFAULT 'transfer';
SELECT bank_create_readmodel('readmodel');
