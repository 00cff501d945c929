-- Cluster-wide rate limits: one row per bucket (a provider's request limit,
-- a provider's refresh budget), shared by every member. `tat` is the GCRA's
-- theoretical arrival time and `paused_until` the end of a 429's pause, both
-- in Unix ms on the members' clocks; `last_take` is how many cells the last
-- take got (what the take's own statement returns). Each take is one
-- statement; no lock is held beyond it.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tat DOUBLE PRECISION NOT NULL DEFAULT 0,
    paused_until BIGINT NOT NULL DEFAULT 0,
    last_take INTEGER NOT NULL DEFAULT 0
);

-- Members read each other's hand-outs (the refresh budget's order) by time.
CREATE INDEX credentials_last_handed_out_at ON credentials (last_handed_out_at)
    WHERE last_handed_out_at IS NOT NULL;
