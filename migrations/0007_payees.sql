-- Payees (api/payees.py): the people and companies a customer pays, by IBAN. Customers' personal data, kept
-- here and not on the ledger's log (which is immutable: a removed payee must be gone). Changes are on the audit
-- trail (bank.audit: payee_added, payee_changed, payee_removed).
--   * added_at is business time (infra/clock.py), like commands' issued_at, so a cooling-off period compares
--     like with like; a change of name or nickname leaves it, and the IBAN never changes (add another payee);
--   * confirmation is the confirmation-of-payee outcome when the payee was added or renamed (core/payees.py);
--   * one payee per customer and IBAN.
CREATE TABLE IF NOT EXISTS payees (
    payee_id     uuid        PRIMARY KEY,
    customer_id  text        NOT NULL,
    iban         text        NOT NULL,
    name         text        NOT NULL,
    nickname     text,
    internal     boolean     NOT NULL,
    confirmation text        NOT NULL CHECK (confirmation IN ('match', 'close_match', 'no_match', 'not_applicable')),
    added_at     timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, iban)
);

CREATE INDEX IF NOT EXISTS payees_customer ON payees (customer_id, added_at);
