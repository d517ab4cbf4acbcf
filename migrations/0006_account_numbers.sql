-- Account numbers the API allocated (core/account_numbers.py, api/account_numbers.py). Not a read model: the
-- number travels on OpenAccount and AccountOpened, and the log is its record. This table only makes the
-- allocation unique across API instances and the same for a retried request:
--   * the sequence hands out each serial once; core.account_numbers maps serials to numbers one to one;
--   * account_number is UNIQUE: should two serials ever give one number (a change of the mapping or of the
--     bank's settings), the allocation fails and the allocator draws the next serial instead;
--   * account_id is the key: a retried request (same idempotency key, so the same account id) gets the number
--     its first attempt got, whether or not that attempt reached the log.
CREATE SEQUENCE IF NOT EXISTS account_number_serial START WITH 1 MINVALUE 1;

CREATE TABLE IF NOT EXISTS account_numbers (
    account_id     text        PRIMARY KEY,
    account_number text        NOT NULL UNIQUE,
    serial         bigint      NOT NULL UNIQUE,
    allocated_at   timestamptz NOT NULL DEFAULT now()
);
