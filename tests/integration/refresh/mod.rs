//! The refresher through the real daemon, on a manual clock: due times,
//! single-flight, shared grants, backoff, Retry-After, invalid_grant,
//! application calendars, and two daemons racing on one database.

mod budget;
mod budget_auto;
mod budget_restart;
mod concurrency;
mod expiry;
mod failures;
mod inflight;
mod race;
mod schedule;
