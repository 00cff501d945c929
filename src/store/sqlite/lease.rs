//! Refresh leases, and the writes a lease holder makes when its refresh
//! did not produce tokens: a failure to retry, or a grant that needs a
//! person. The lease's generation fences them (see `crate::store::Backend`).
//! A lease whose holder is provably gone is taken over at once
//! (`crate::store::owner`).

use super::{SqliteStore, next_change_seq};
use crate::clock::UnixMillis;
use crate::model::GrantId;
use crate::store::{Claim, Lease, StoreError, owner};

impl SqliteStore {
    /// See [`crate::store::Backend::claim`]. The lease is written on the
    /// lease connection (`synchronous=NORMAL`: visible to every process at
    /// once, not worth an fsync), the grant read on the main pool.
    #[tracing::instrument(skip_all, fields(grant_id = %grant_id), err)]
    pub(super) async fn take_lease(
        &self,
        grant_id: GrantId,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        self.check_file()?;
        let now = self.now();
        let until = now.saturating_add(lease_ms);
        let serial = self.write_lock.lock().await;
        let mut taken = sqlx::query_scalar!(
            "UPDATE grants SET lease_owner = ?1, lease_until = ?2
             WHERE id = ?3 AND (lease_owner IS NULL OR lease_until <= ?4 OR lease_owner = ?1)
             RETURNING generation",
            self.owner,
            until,
            grant_id.0,
            now
        )
        .fetch_optional(&self.lease_pool)
        .await?;
        if taken.is_none() {
            let held: Option<(Option<String>, Option<i64>)> =
                sqlx::query_as("SELECT lease_owner, lease_until FROM grants WHERE id = ?1")
                    .bind(grant_id.0)
                    .fetch_optional(&self.lease_pool)
                    .await?;
            let Some((holder, held_until)) = held else {
                return Ok(Claim::Gone);
            };
            let holder = holder.unwrap_or_default();
            if !owner::is_provably_dead(&holder) {
                return Ok(Claim::Held {
                    until: held_until.unwrap_or(now),
                });
            }
            // Its holder died holding it (same machine, PID gone or reused).
            taken = sqlx::query_scalar(
                "UPDATE grants SET lease_owner = ?1, lease_until = ?2
                 WHERE id = ?3 AND lease_owner = ?4 RETURNING generation",
            )
            .bind(&self.owner)
            .bind(until)
            .bind(grant_id.0)
            .bind(&holder)
            .fetch_optional(&self.lease_pool)
            .await?;
            if taken.is_none() {
                // Someone else took it over first: look again soon.
                return Ok(Claim::Held { until: now });
            }
            tracing::info!(grant_id = %grant_id, "took over the refresh lease of a process that is gone");
        }
        drop(serial);
        let Some(grant) = self.grant(grant_id).await? else {
            return Ok(Claim::Gone);
        };
        let lease = Lease {
            grant_id,
            generation: grant.state.generation,
        };
        Ok(Claim::Acquired { lease, grant })
    }

    /// See [`crate::store::Backend::release`].
    pub(super) async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let _serial = self.write_lock.lock().await;
        sqlx::query!(
            "UPDATE grants SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
            lease.grant_id.0,
            self.owner
        )
        .execute(&self.lease_pool)
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
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let failures = sqlx::query_scalar!(
            "UPDATE grants SET consecutive_failures = consecutive_failures + 1, last_error = ?1,
                 next_refresh_at = ?2, updated_at = ?3, change_seq = ?4,
                 lease_owner = CASE WHEN lease_owner = ?5 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = ?5 THEN NULL ELSE lease_until END
             WHERE id = ?6 AND generation = ?7 RETURNING consecutive_failures",
            error,
            next_refresh_at,
            now,
            seq,
            self.owner,
            lease.grant_id.0,
            lease.generation
        )
        .fetch_optional(&mut *tx)
        .await?;
        if failures.is_some() {
            tx.commit().await?;
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
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let marked = sqlx::query!(
            "UPDATE grants SET status = 'needs_reauth', last_error = ?1, next_refresh_at = NULL,
                 consecutive_failures = consecutive_failures + 1, updated_at = ?2, change_seq = ?3,
                 lease_owner = CASE WHEN lease_owner = ?4 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN lease_owner = ?4 THEN NULL ELSE lease_until END
             WHERE id = ?5 AND generation = ?6",
            error,
            now,
            seq,
            self.owner,
            lease.grant_id.0,
            lease.generation
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if marked {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
            self.release_lease(lease).await?;
        }
        Ok(marked)
    }
}
