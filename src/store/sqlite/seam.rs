//! The [`Backend`] seam for [`SqliteStore`]: each call answered by the
//! inherent method in the file of this folder that does it.

use async_trait::async_trait;
use secrecy::SecretString;

use super::{SqliteStore, load};
use crate::clock::UnixMillis;
use crate::model::{CredentialView, Grant, GrantId, GrantState};
use crate::store::crypto::{Cipher, MasterKey};
use crate::store::types::*;
use crate::store::{Backend, StoreError};

/// The seam, answered by the inherent methods in this folder's files.
#[async_trait]
impl Backend for SqliteStore {
    fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.probe_write().await
    }

    async fn close(&self) {
        self.lease_pool.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    async fn count_grants(&self) -> Result<usize, StoreError> {
        self.count().await
    }

    async fn load_each(
        &self,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<i64, StoreError> {
        self.load_pages(load::PAGE, each).await
    }

    async fn changes_since(&self, since: i64) -> Result<Changes, StoreError> {
        self.changes(since).await
    }

    async fn put_credentials(
        &self,
        batch: &[NewCredential<'_>],
    ) -> Result<Vec<PutOutcome>, StoreError> {
        self.put_batch(batch).await
    }

    async fn delete_credential(&self, id: &str) -> Result<Option<DeleteOutcome>, StoreError> {
        self.delete(id).await
    }

    async fn get_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        self.grant(id).await
    }

    async fn grant_id_of(&self, credential_id: &str) -> Result<Option<GrantId>, StoreError> {
        self.grant_of(credential_id).await
    }

    async fn grant_by_refresh_token(
        &self,
        provider: &str,
        refresh_token: &SecretString,
    ) -> Result<Option<GrantId>, StoreError> {
        self.grant_holding(provider, refresh_token).await
    }

    async fn get_credential(&self, id: &str) -> Result<Option<CredentialView>, StoreError> {
        self.view(id).await
    }

    async fn list_credentials(
        &self,
        filter: &ListFilter,
        patterns: &[String],
    ) -> Result<Vec<CredentialView>, StoreError> {
        self.list(filter, patterns).await
    }

    async fn claim(&self, grant_id: GrantId, lease_ms: i64) -> Result<Claim, StoreError> {
        self.take_lease(grant_id, lease_ms).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.release_lease(lease).await
    }

    async fn commit_refreshes(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        self.commit_batch(batch).await
    }

    async fn record_failure(
        &self,
        lease: &Lease,
        error: &str,
        next_refresh_at: UnixMillis,
    ) -> Result<Option<i64>, StoreError> {
        self.failure(lease, error, next_refresh_at).await
    }

    async fn mark_needs_reauth(&self, lease: &Lease, error: &str) -> Result<bool, StoreError> {
        self.needs_reauth(lease, error).await
    }

    async fn record_hand_outs(&self, batch: &[(String, UnixMillis)]) -> Result<(), StoreError> {
        self.write_hand_outs(batch).await
    }

    async fn hand_outs_each(
        &self,
        each: &mut (dyn for<'s> FnMut(&'s str, UnixMillis) + Send),
    ) -> Result<(), StoreError> {
        self.read_hand_outs(each).await
    }

    async fn rotate_key(&self, new_key: &MasterKey) -> Result<u64, StoreError> {
        self.reseal(new_key).await
    }

    async fn export_page(&self, after: i64, limit: i64) -> Result<Vec<SealedGrant>, StoreError> {
        self.export(after, limit).await
    }

    async fn import_sealed(&self, batch: &[SealedGrant]) -> Result<(), StoreError> {
        self.import(batch).await
    }
}
