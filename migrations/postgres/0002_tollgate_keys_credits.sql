-- Credits on tollgate's API keys (feature `postgres`): what a key is given,
-- as a configuration file writes it: {"remaining": 1000}, or
-- {"refill": {"amount": 10000, "interval": "month"}}. NULL: no credits.
--
-- The balance itself lives in the rate store (in memory, or Redis), counted
-- per key id; this column only says what the key is given. A change of it
-- notifies the gateways as any change of a row does (0001's trigger).
-- Applied after 0001; safe to apply again.

ALTER TABLE tollgate_keys ADD COLUMN IF NOT EXISTS credits jsonb
    CHECK (credits IS NULL OR jsonb_typeof(credits) = 'object');
