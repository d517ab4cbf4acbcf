-- Billers (api/billers.py, core/billers.py): the companies and authorities customers pay bills to, kept by staff.
-- A bill payment is a payment to the biller's settlement IBAN through the payment rail, with the customer's
-- reference checked against reference_pattern (and check_digit) first. Changes are on the audit trail.
CREATE TABLE IF NOT EXISTS billers (
    biller_id         uuid        PRIMARY KEY,
    name              text        NOT NULL UNIQUE,
    category          text        NOT NULL,
    iban              text        NOT NULL,
    bic               text,
    reference_pattern text        NOT NULL,
    check_digit       text        CHECK (check_digit IN ('luhn')),
    active            boolean     NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
