//! Cluster mode: the API suite of `tests/integration` again with every app
//! on a PostgreSQL database of its own (a scratch database per app
//! directory; see `integration/pg.rs`), and the cluster tests: several
//! real daemons on one database with the fake provider.

#[path = "../integration"]
mod integration {
    pub mod api;
    pub mod fake_provider;
    pub mod helpers;
    pub mod logs;
    pub mod pg;
    pub mod process;
}

mod cluster;
mod copy;
mod limits;
mod member;
mod relay;

// The shared modules name each other from the crate root, as in their own binary.
use integration::{api, fake_provider, helpers, logs, pg, process};

/// Every app of this binary runs on PostgreSQL.
pub const POSTGRES: bool = true;
