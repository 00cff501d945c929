//! tokend: a token-management sidecar daemon.
//!
//! It keeps OAuth 2.0 refresh tokens in SQLite (sealed at rest), refreshes
//! access tokens in the background ahead of their expiry, and hands the
//! current access token to local services over a small HTTP API.
//!
//! # Layout
//! Data flows one way: provider → refresher → store → cache → api.
//! - [`model`]: the domain types every part speaks (grants, tokens,
//!   credentials, their views); no behaviour beyond their own.
//! - [`config`]: typed configuration, layered defaults < file < environment.
//! - [`provider`]: Cronofy and generic OAuth 2.0 clients behind one trait;
//!   failures come back classified.
//! - [`refresh`]: the only way tokens move from a provider into the store
//!   and the cache: the scheduler, the single-flight refresh of a grant
//!   (`refresh_grant`), group commit, the intake of new grants.
//! - [`store`]: the [`store::Backend`] seam (its contract: durability,
//!   atomicity, generations, leases, the change feed), the SQLite backend,
//!   the sealing of tokens at rest shared by every backend, whether the
//!   store takes writes now (`health`) and who holds a lease (`owner`).
//! - [`cache`]: the in-memory tokens the API hands out, published only
//!   after the store made them durable.
//! - [`api`]: the local HTTP API (axum); its state holds the store, the
//!   cache and the refresher side by side.
//! - [`daemon`]: `tokend serve`, the composition root: listeners, start-up
//!   order, SIGHUP, graceful shutdown.
//! - [`cli`]: the command line (clap); works on the store through the same
//!   refresher as the daemon.
//! - [`telemetry`]: logging (journald-aware), Prometheus metrics, systemd
//!   notify; the others report into it, it depends on none of them.
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
