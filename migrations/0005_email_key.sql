-- One account per email, compared in one form: core.identity.normalise_email (NFKC, full case folding), computed
-- in Python and stored here; SQL compares it exactly. lower(email) folded by the database's locale, which
-- Python's folding does not match ('STRASSE' and 'straße', the Kelvin sign, fullwidth letters...).
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_key text;
-- Rows from before: NFKC then lower-case is the closest SQL gets, exact for ASCII addresses (this one-off
-- back-fill is the only place SQL folds an email). The few non-ASCII addresses that full case folding treats
-- differently (ß, ſ, ...) need their key set by hand to normalise_email(email) before their owners log in.
UPDATE users SET email_key = lower(normalize(email, NFKC)) WHERE email_key IS NULL;
ALTER TABLE users ALTER COLUMN email_key SET NOT NULL;
DROP INDEX IF EXISTS users_email_lower;
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email_key);
