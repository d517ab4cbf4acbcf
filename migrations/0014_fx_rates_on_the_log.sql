-- The currency-exchange rate table moved to the log: bank.fx.rates (FxRatesSet records, core/fx.py), folded by
-- every API instance (api/fx_rates.py). fx_rates is no longer written; an API that finds the topic empty
-- publishes this table's rows once (ids derived from the row ids), so rates set before the move still apply.
COMMENT ON TABLE fx_rates IS 'read once by the API to carry rates over to bank.fx.rates; no longer written';
