//! The cluster's rate buckets ([`SharedBuckets`]): one row per bucket, a
//! take or a pause one upsert, so no lock outlives its statement.
//!
//! The row holds the GCRA's theoretical arrival time `tat` (Unix ms, on the
//! members' clocks: hosts keep their clocks in step with NTP; a skew of a few
//! milliseconds moves a cell by as much). A take of up to `want` cells at
//! `now`, with `T` ms between cells and `burst` at most at once, gets
//! `k = min(want, floor((now + burst·T − max(tat, now)) / T))` cells when
//! that is at least one and the bucket is not paused, and moves `tat` to
//! `max(tat, now) + k·T`. With none, the next cell is there at
//! `tat − (burst − 1)·T`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::clock::UnixMillis;
use crate::provider::bucket::{BucketError, BucketRate, SharedBuckets, Taken};

/// How long a take or a pause may wait for the database before the member
/// falls back to its own bucket: a lost server must not hold provider calls.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The rate buckets of one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgBuckets {
    pool: PgPool,
}

impl PgBuckets {
    pub(super) fn new(pool: PgPool) -> Self {
        PgBuckets { pool }
    }
}

fn failed(e: impl std::fmt::Display) -> BucketError {
    BucketError(e.to_string())
}

#[async_trait]
impl SharedBuckets for PgBuckets {
    async fn take(
        &self,
        key: &str,
        rate: BucketRate,
        want: u32,
        now: UnixMillis,
    ) -> Result<Taken, BucketError> {
        let interval = rate.interval_ms();
        let burst = f64::from(rate.burst.max(1));
        let want = i32::try_from(want.max(1)).unwrap_or(i32::MAX);
        // In SET and in the CASE, column names are the row before the take.
        let query = sqlx::query(
            "INSERT INTO rate_buckets AS b (key, tat, last_take)
             VALUES ($1, $2 + $4 * LEAST($3, $5), LEAST($3, $5::int))
             ON CONFLICT (key) DO UPDATE SET
               last_take = CASE WHEN b.paused_until > $2 THEN 0 ELSE
                 LEAST($3, GREATEST(0, FLOOR(($2 + $5 * $4 - GREATEST(b.tat, $2)) / $4 + 1e-9)))::int END,
               tat = CASE WHEN b.paused_until > $2 THEN b.tat ELSE
                 GREATEST(b.tat, $2) + $4 * LEAST($3, GREATEST(0, FLOOR(($2 + $5 * $4 - GREATEST(b.tat, $2)) / $4 + 1e-9))) END
             RETURNING last_take, tat, paused_until",
        )
        .bind(key)
        .bind(now as f64)
        .bind(want)
        .bind(interval)
        .bind(burst);
        let row = tokio::time::timeout(TIMEOUT, query.fetch_one(&self.pool))
            .await
            .map_err(|_| failed("no answer within a second"))?
            .map_err(failed)?;
        let taken: i32 = row.try_get(0).map_err(failed)?;
        let tat: f64 = row.try_get(1).map_err(failed)?;
        let paused_until: i64 = row.try_get(2).map_err(failed)?;
        Ok(if taken > 0 {
            Taken::Cells(taken as u32)
        } else if paused_until > now {
            Taken::Paused(paused_until)
        } else {
            let next = (tat - (burst - 1.0) * interval).ceil();
            Taken::NotBefore((next as UnixMillis).max(now + 1))
        })
    }

    async fn pause(&self, key: &str, until: UnixMillis) -> Result<(), BucketError> {
        let query = sqlx::query(
            "INSERT INTO rate_buckets AS b (key, paused_until) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET paused_until = GREATEST(b.paused_until, $2)",
        )
        .bind(key)
        .bind(until);
        tokio::time::timeout(TIMEOUT, query.execute(&self.pool))
            .await
            .map_err(|_| failed("no answer within a second"))?
            .map_err(failed)?;
        Ok(())
    }

    async fn give_back(&self, key: &str, rate: BucketRate) -> Result<(), BucketError> {
        let query = sqlx::query("UPDATE rate_buckets SET tat = tat - $2 WHERE key = $1")
            .bind(key)
            .bind(rate.interval_ms());
        tokio::time::timeout(TIMEOUT, query.execute(&self.pool))
            .await
            .map_err(|_| failed("no answer within a second"))?
            .map_err(failed)?;
        Ok(())
    }
}
