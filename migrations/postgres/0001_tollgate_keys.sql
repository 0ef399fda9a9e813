-- tollgate's API keys in PostgreSQL (feature `postgres`).
--
-- One row per key, found by the key's HMAC-SHA256 digest under the server's
-- pepper: the key itself is never stored. Applied by
-- `tollgate::key::postgres::migrate` (or `psql -f`); safe to apply again.
--
-- Every insert, delete and change of a row (other than its last-used time)
-- sends NOTIFY tollgate_keys with the row's digest in hexadecimal, and a
-- TRUNCATE sends '*': each gateway LISTENs and forgets what it cached of
-- that key (of every key, for '*') within one round trip of the commit.

CREATE TABLE IF NOT EXISTS tollgate_keys (
    digest       bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
    key_id       text NOT NULL UNIQUE CHECK (key_id <> ''),
    project      text NOT NULL CHECK (project <> ''),
    kind         text NOT NULL CHECK (kind IN ('publishable', 'secret', 'restricted')),
    environment  text CHECK (environment IN ('live', 'test')),
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'disabled', 'revoked')),
    -- Empty: the kind's default scopes.
    scopes       text[] NOT NULL DEFAULT '{}',
    -- Browser origins (patterns such as https://*.example.com).
    origins      text[] NOT NULL DEFAULT '{}',
    tier         text,
    body_limit   bigint CHECK (body_limit >= 0),
    -- Quota overrides by policy label: {"sdk": {"rate": 6000, "per": "minute"}}.
    quotas       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(quotas) = 'object'),
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE INDEX IF NOT EXISTS tollgate_keys_project ON tollgate_keys (project);

CREATE OR REPLACE FUNCTION tollgate_keys_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('tollgate_keys', '*');
        RETURN NULL;
    END IF;
    -- The last-used time is written back in batches: no gateway needs to
    -- hear of it.
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(OLD) - 'last_used_at') = (to_jsonb(NEW) - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('tollgate_keys', encode(OLD.digest, 'hex'));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.digest <> OLD.digest) THEN
        PERFORM pg_notify('tollgate_keys', encode(NEW.digest, 'hex'));
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS tollgate_keys_notify ON tollgate_keys;
CREATE TRIGGER tollgate_keys_notify
    AFTER INSERT OR UPDATE OR DELETE ON tollgate_keys
    FOR EACH ROW EXECUTE FUNCTION tollgate_keys_notify();

DROP TRIGGER IF EXISTS tollgate_keys_notify_truncate ON tollgate_keys;
CREATE TRIGGER tollgate_keys_notify_truncate
    AFTER TRUNCATE ON tollgate_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_keys_notify();
