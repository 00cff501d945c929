//! Integration tests: one binary, real loopback HTTP, real SQLite files in
//! temp dirs, and a fake OAuth provider that is a real HTTP server.

mod api;
mod cli;
mod crash;
mod examples;
mod fake_provider;
mod handout;
mod hardening;
mod helpers;
mod logs;
mod observability;
mod operator;
mod ops;
mod pg;
mod process;
mod provider;
mod proxy;
mod refresh;
mod smoke;

/// This binary runs on SQLite; `tests/postgres` runs the API suite on PostgreSQL.
pub const POSTGRES: bool = false;
