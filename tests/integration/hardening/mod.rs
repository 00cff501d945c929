//! Faults and attacks (issue 11): absurd numbers, the exact Host rule,
//! secrets in every encoding, a provider answering megabytes of headers,
//! connection floods and half-sent requests, and `rotate-key` beside a
//! running daemon.

mod connections;
mod dead_lease;
mod disk_full;
mod flood;
mod host;
mod numbers;
mod provider_headers;
mod rotate;
mod secrets;
mod store;
