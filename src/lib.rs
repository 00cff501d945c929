//! tokend: a token-management sidecar daemon.
//!
//! It keeps OAuth 2.0 refresh tokens in SQLite (sealed at rest), refreshes
//! access tokens in the background ahead of their expiry, and hands the
//! current access token to local services over a small HTTP API.
//!
//! # Layout
//! - [`config`]: typed configuration, layered defaults < file < environment.
//! - [`provider`]: Cronofy and generic OAuth 2.0 clients behind one trait.
//! - [`store`]: SQLite (migrations, WAL, `synchronous=FULL`) and encryption at rest.
//! - [`refresh`]: the scheduler and the single-flight refresh of a grant.
//! - [`cache`]: the in-memory tokens the API hands out.
//! - [`api`]: the local HTTP API (axum).
//! - [`daemon`]: `tokend serve`: listeners, start-up order, graceful shutdown.
//! - [`cli`]: the command line (clap).
//! - [`telemetry`]: logging (journald-aware), Prometheus metrics, systemd notify.
//! - [`webhook`]: signed POSTs on grant status transitions.
//! - [`clock`]: the injectable clock all timing goes through.
//! - [`redact`]: URLs without credentials, serde messages without values.
//! - [`lockfile`]: the database's lock file (daemons shared, rotate-key exclusive).

pub mod api;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod lockfile;
pub mod model;
pub mod provider;
pub mod redact;
pub mod refresh;
pub mod store;
pub mod telemetry;
pub mod webhook;
