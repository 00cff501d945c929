-- tokend schema v1. Times are Unix milliseconds. Token columns hold values
-- sealed by src/store/crypto.rs (never plaintext).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- One row; every write transaction takes the next number and stamps the rows
-- it touches, so a daemon sees what the CLI (another process) changed.
CREATE TABLE change_counter (
    id  INTEGER PRIMARY KEY NOT NULL CHECK (id = 0),
    seq INTEGER NOT NULL
) STRICT;
INSERT INTO change_counter (id, seq) VALUES (0, 0);

-- A grant: one refresh token at one provider, shared by its credentials.
CREATE TABLE grants (
    id                      INTEGER PRIMARY KEY NOT NULL,
    provider                TEXT    NOT NULL,
    status                  TEXT    NOT NULL DEFAULT 'active'
                                    CHECK (status IN ('active', 'needs_reauth')),
    refresh_token           BLOB    NOT NULL,
    -- keyed hash of the refresh token: finds the grant an incoming token belongs to
    refresh_token_hash      BLOB    NOT NULL,
    previous_refresh_token  BLOB,
    access_token            BLOB,
    token_type              TEXT    NOT NULL DEFAULT 'bearer',
    scope                   TEXT,
    expires_at              INTEGER,
    lifetime_secs           INTEGER,
    -- set for Cronofy application calendars, which are provisioned again instead of re-authorized
    application_calendar_id TEXT,
    -- bumped by every token write; writers compare-and-set on it
    generation              INTEGER NOT NULL DEFAULT 0,
    lease_owner             TEXT,
    lease_until             INTEGER,
    last_refresh_at         INTEGER,
    next_refresh_at         INTEGER,
    consecutive_failures    INTEGER NOT NULL DEFAULT 0,
    last_error              TEXT,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    change_seq              INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX grants_by_refresh_token ON grants (provider, refresh_token_hash);
CREATE INDEX grants_by_change ON grants (change_seq);

-- A credential: the id a caller names, pointing at a grant. Extras are the
-- provider's extra fields (JSON object) as this credential saw them.
CREATE TABLE credentials (
    id         TEXT    PRIMARY KEY NOT NULL,
    grant_id   INTEGER NOT NULL REFERENCES grants (id),
    extras     TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    change_seq INTEGER NOT NULL
) STRICT;
CREATE INDEX credentials_by_grant ON credentials (grant_id);
CREATE INDEX credentials_by_change ON credentials (change_seq);

-- Deletions, so another process can drop them from its cache.
CREATE TABLE deleted_credentials (
    id         TEXT    PRIMARY KEY NOT NULL,
    change_seq INTEGER NOT NULL
) STRICT;
CREATE INDEX deleted_credentials_by_change ON deleted_credentials (change_seq);
