//! The connections of the refresh path's batch statements (the group claim
//! in `claims`, the group commit in `commit` and `commit_cas`), kept apart
//! because they plan their statements once.
//!
//! sqlx prepares each statement once per connection, but PostgreSQL still
//! plans a prepared statement again at every execution while it judges a
//! plan made for the actual values cheaper than a generic one, and for an
//! array parameter (these statements take their batch as arrays) it always
//! does: the generic plan assumes a longer array. Planning was about a fifth
//! of the backends' CPU in the refresh storm. On these connections
//! `plan_cache_mode = force_generic_plan` keeps the first plan.
//!
//! That is safe for these statements alone, which is why they have their
//! own connections: each finds its rows by primary key (`id = ANY($n)`, or
//! a join with `unnest(...)` on the key) and a grant's credentials by
//! `credentials_by_grant`, whatever the values or the table's size, so the
//! generic plan is the plan a custom one would be. A statement whose best
//! plan depends on a value (the feed's `change_seq > $1`, a listing's
//! `LIKE` patterns) must not run here.

use sqlx::postgres::PgConnectOptions;

/// `options` for a batch connection.
pub(super) fn options(options: PgConnectOptions) -> PgConnectOptions {
    options.options([("plan_cache_mode", "force_generic_plan")])
}
