-- Currency exchange (core/fx.py, api/routes/fx.py).
-- fx_rates: the staff-managed rate table, append-only. A PUT adds entries effective from a moment; the newest
-- entry effective at a time applies, so the table is also its own history (who set what, when, from when).
-- Each change is audit-recorded on bank.audit too (`fx_rates_set`).
CREATE TABLE IF NOT EXISTS fx_rates (
    id                  bigserial   PRIMARY KEY,
    base_currency       text        NOT NULL,
    quote_currency      text        NOT NULL,
    mid_rate            numeric     NOT NULL CHECK (mid_rate > 0),
    spread_basis_points integer     NOT NULL CHECK (spread_basis_points >= 0),
    effective_from      timestamptz NOT NULL,
    set_by              text        NOT NULL,
    set_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fx_rates_effective ON fx_rates (effective_from);

-- fx_quotes: every quote given, by id, so a later transfer executes it at exactly the quoted rate and amounts
-- (and refuses it past expires_at: quote_expired). Rates and amounts as the quote gave them: decimal text and
-- integer minor units.
CREATE TABLE IF NOT EXISTS fx_quotes (
    id                  text        PRIMARY KEY,
    requested_by        text        NOT NULL,
    sell_currency       text        NOT NULL,
    buy_currency        text        NOT NULL,
    side                text        NOT NULL CHECK (side IN ('sell', 'buy')),
    mid_rate            numeric     NOT NULL,
    spread_basis_points integer     NOT NULL,
    rate                numeric     NOT NULL,
    inverse_rate        numeric     NOT NULL,
    sell_amount         bigint      NOT NULL CHECK (sell_amount > 0),
    buy_amount          bigint      NOT NULL CHECK (buy_amount > 0),
    rounded_currency    text        NOT NULL,
    position_amount     bigint      NOT NULL,
    rounding_amount     bigint      NOT NULL,
    remainder           text        NOT NULL,   -- an exact fraction of one minor unit ("9/20")
    created_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL
);
