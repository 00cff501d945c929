-- tokend schema v1 for PostgreSQL: the SQLite schema (../0001_init.sql) in
-- PostgreSQL's types, and the push that tells every member of a change.
-- Times are Unix milliseconds. Token columns hold values sealed by
-- src/store/crypto.rs (never plaintext). Ids compare byte by byte
-- (COLLATE "C"), as in SQLite, so listings page the same on both.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row; every write transaction takes the next number (which also
-- serialises writers) and stamps the rows it touches.
CREATE TABLE change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    seq BIGINT  NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (0, 0);

-- A grant: one refresh token at one provider, shared by its credentials.
CREATE TABLE grants (
    id                      BIGINT  PRIMARY KEY,
    provider                TEXT    NOT NULL,
    status                  TEXT    NOT NULL DEFAULT 'active'
                                    CHECK (status IN ('active', 'needs_reauth')),
    refresh_token           BYTEA   NOT NULL,
    -- keyed hash of the refresh token: finds the grant an incoming token belongs to
    refresh_token_hash      BYTEA   NOT NULL,
    previous_refresh_token  BYTEA,
    access_token            BYTEA,
    token_type              TEXT    NOT NULL DEFAULT 'bearer',
    scope                   TEXT,
    expires_at              BIGINT,
    lifetime_secs           BIGINT,
    application_calendar_id TEXT,
    -- bumped by every token write; writers compare-and-set on it
    generation              BIGINT  NOT NULL DEFAULT 0,
    -- the refresh lease: which member may call the provider, until when
    lease_owner             TEXT,
    lease_until             BIGINT,
    last_refresh_at         BIGINT,
    next_refresh_at         BIGINT,
    consecutive_failures    BIGINT  NOT NULL DEFAULT 0,
    last_error              TEXT,
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL,
    change_seq              BIGINT  NOT NULL
);
CREATE UNIQUE INDEX grants_by_refresh_token ON grants (provider, refresh_token_hash);
CREATE INDEX grants_by_change ON grants (change_seq);

CREATE TABLE credentials (
    id         TEXT COLLATE "C" PRIMARY KEY,
    grant_id   BIGINT NOT NULL REFERENCES grants (id),
    extras     TEXT   NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    change_seq BIGINT NOT NULL
);
CREATE INDEX credentials_by_grant ON credentials (grant_id);
CREATE INDEX credentials_by_change ON credentials (change_seq);

CREATE TABLE deleted_credentials (
    id         TEXT COLLATE "C" PRIMARY KEY,
    change_seq BIGINT NOT NULL
);
CREATE INDEX deleted_credentials_by_change ON deleted_credentials (change_seq);

-- Every committed change number is pushed to the members listening on
-- `tokend_changes`. The payload is the number alone, never a row: members
-- read what changed through the change feed. A transaction that rolls back
-- sends nothing (NOTIFY is delivered at commit).
CREATE FUNCTION tokend_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokend_changes', NEW.seq::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER change_counter_notify AFTER UPDATE ON change_counter
    FOR EACH ROW EXECUTE FUNCTION tokend_notify_change();
