//! Refresh leases, and the writes a lease holder makes when its refresh
//! did not produce tokens: a failure to retry, or a grant that needs a
//! person. The lease's generation fences them (see `crate::store::Backend`).
//!
//! A lease is one `UPDATE` in its own transaction: the row lock it takes
//! lasts for that statement alone. Between `claim` and the write that ends
//! the lease (while the provider is called) the member holds nothing in
//! PostgreSQL but the row's `lease_owner`/`lease_until` values, which
//! another member takes over once `lease_until` has passed (or at once, when
//! the holder is a process of the same machine that is provably gone).

use super::claims::Claims;
use super::rows::{GrantRow, GrantWithCredentials, credential_arrays, grant_columns};
use super::{PgStore, next_change_seq};
use crate::clock::UnixMillis;
use crate::model::GrantId;
use crate::store::{Claim, Lease, StoreError};

impl PgStore {
    /// See [`crate::store::Backend::claim`]. Lease times are this member's
    /// clock: members keep their clocks in step (NTP), well within the
    /// lease's margin over the provider timeout.
    #[tracing::instrument(skip_all, fields(grant_id = %grant_id), err)]
    pub(super) async fn take_lease(
        &self,
        grant_id: GrantId,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        let now = self.now();
        let until = now.saturating_add(lease_ms);
        // With the claims this member makes meanwhile (`claims`), else alone.
        let claims = self
            .claims
            .get_or_init(|| Claims::start(self.batch_pool.clone(), self.owner.as_str().into()));
        let taken = match claims.take(grant_id.0, now, until).await {
            Some(row) => Some(row),
            None => self.take_alone(grant_id, now, until).await?,
        };
        let (row, credentials) = match taken {
            Some(taken) => taken.split(),
            None => match self.take_over_dead(grant_id, until).await? {
                Ok(row) => {
                    let mut conn = self.pool.acquire().await?;
                    let credentials =
                        super::read::credentials_of_grant(&mut conn, grant_id).await?;
                    (row, credentials)
                }
                Err(held) => return Ok(held),
            },
        };
        let grant = self.grant_of_rows(row, credentials)?;
        let lease = Lease {
            grant_id,
            generation: grant.state.generation,
        };
        Ok(Claim::Acquired { lease, grant })
    }

    /// One claim in a statement of its own: the lease and the grant as it
    /// stands, credentials included (`None`: not taken).
    async fn take_alone(
        &self,
        grant_id: GrantId,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Option<GrantWithCredentials>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "UPDATE grants g SET lease_owner = $1, lease_until = $2
             WHERE id = $3 AND (lease_owner IS NULL OR lease_until <= $4 OR lease_owner = $1)
             RETURNING ",
            grant_columns!(),
            ", ",
            credential_arrays!()
        ))
        .bind(&self.owner)
        .bind(until)
        .bind(grant_id.0)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The grant's lease is held: taken over if its holder is provably gone
    /// (a process on this machine that died holding it, see
    /// `crate::store::owner`), else what the caller waits for.
    async fn take_over_dead(
        &self,
        grant_id: GrantId,
        until: UnixMillis,
    ) -> Result<Result<GrantRow, Claim>, StoreError> {
        let now = self.now();
        let held: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT lease_owner, lease_until FROM grants WHERE id = $1")
                .bind(grant_id.0)
                .fetch_optional(&self.pool)
                .await?;
        let Some((holder, held_until)) = held else {
            return Ok(Err(Claim::Gone));
        };
        let holder = holder.unwrap_or_default();
        if !crate::store::owner::is_provably_dead(&holder) {
            return Ok(Err(Claim::Held {
                until: held_until.unwrap_or(now),
            }));
        }
        let taken: Option<GrantRow> = sqlx::query_as(concat!(
            "UPDATE grants SET lease_owner = $1, lease_until = $2
             WHERE id = $3 AND lease_owner = $4
             RETURNING ",
            grant_columns!()
        ))
        .bind(&self.owner)
        .bind(until)
        .bind(grant_id.0)
        .bind(&holder)
        .fetch_optional(&self.pool)
        .await?;
        match taken {
            Some(row) => {
                tracing::info!(grant_id = %grant_id, "took over the refresh lease of a process that is gone");
                Ok(Ok(row))
            }
            // Someone else took it over first: look again soon.
            None => Ok(Err(Claim::Held { until: now })),
        }
    }

    /// See [`crate::store::Backend::release`].
    pub(super) async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE grants SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(lease.grant_id.0)
        .bind(&self.owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// See [`crate::store::Backend::record_failure`].
    #[tracing::instrument(skip_all, fields(grant_id = %lease.grant_id), err)]
    pub(super) async fn failure(
        &self,
        lease: &Lease,
        error: &str,
        next_refresh_at: UnixMillis,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let seq = next_change_seq(&mut tx).await?;
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE grants SET consecutive_failures = consecutive_failures + 1, last_error = $1,
                 next_refresh_at = $2, updated_at = $3, change_seq = $4,
                 lease_owner = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_until END
             WHERE id = $6 AND generation = $7 RETURNING consecutive_failures",
        )
        .bind(error)
        .bind(next_refresh_at)
        .bind(now)
        .bind(seq)
        .bind(&self.owner)
        .bind(lease.grant_id.0)
        .bind(lease.generation)
        .fetch_optional(&mut *tx)
        .await?;
        if failures.is_some() {
            tx.commit().await?;
            self.wrote_status(lease.grant_id, seq);
        } else {
            tx.rollback().await?;
            self.release_lease(lease).await?;
        }
        Ok(failures)
    }

    /// See [`crate::store::Backend::mark_needs_reauth`].
    #[tracing::instrument(skip_all, fields(grant_id = %lease.grant_id), err)]
    pub(super) async fn needs_reauth(
        &self,
        lease: &Lease,
        error: &str,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let seq = next_change_seq(&mut tx).await?;
        let marked = sqlx::query(
            "UPDATE grants SET status = 'needs_reauth', last_error = $1, next_refresh_at = NULL,
                 consecutive_failures = consecutive_failures + 1, updated_at = $2, change_seq = $3,
                 lease_owner = CASE WHEN lease_owner = $4 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = $4 THEN NULL ELSE lease_until END
             WHERE id = $5 AND generation = $6",
        )
        .bind(error)
        .bind(now)
        .bind(seq)
        .bind(&self.owner)
        .bind(lease.grant_id.0)
        .bind(lease.generation)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if marked {
            tx.commit().await?;
            self.wrote_status(lease.grant_id, seq);
        } else {
            tx.rollback().await?;
            self.release_lease(lease).await?;
        }
        Ok(marked)
    }
}
