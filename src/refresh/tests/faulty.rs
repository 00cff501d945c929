//! A store that refuses refresh commits on demand (a full disk, a
//! database gone read-only) and counts the commit transactions it is asked
//! for; everything else goes to the real store behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::clock::UnixMillis;
use crate::model::{CredentialView, Grant, GrantId, GrantState};
use crate::store::crypto::{Cipher, MasterKey};
use crate::store::{
    Backend, Changes, Claim, CommitOutcome, DeleteOutcome, Lease, ListFilter, NewCredential,
    PutOutcome, Store, StoreError, TokenCommit,
};

#[derive(Debug)]
pub(super) struct Faulty {
    inner: Store,
    /// Commits still to refuse.
    refuse: AtomicUsize,
    /// Commit transactions asked for, and results in them.
    transactions: AtomicUsize,
    results: AtomicUsize,
    /// The next read of changes waits, once read, until released.
    hold_feed: AtomicBool,
    feed_read: tokio::sync::Notify,
    feed_release: tokio::sync::Notify,
}

/// The handle to a [`Faulty`] the test keeps.
#[derive(Debug, Clone)]
pub(super) struct Faults(Arc<Faulty>);

impl Faults {
    /// Wraps `inner`: the store for the refresher, and the handle for the test.
    pub(super) fn wrap(inner: Store) -> (Store, Faults) {
        let faulty = Arc::new(Faulty {
            inner,
            refuse: AtomicUsize::new(0),
            transactions: AtomicUsize::new(0),
            results: AtomicUsize::new(0),
            hold_feed: AtomicBool::new(false),
            feed_read: tokio::sync::Notify::new(),
            feed_release: tokio::sync::Notify::new(),
        });
        // One health for both handles, as one store has.
        let health = faulty.inner.health().clone();
        (Store::with_health(faulty.clone(), health), Faults(faulty))
    }

    pub(super) fn refuse_commits(&self, n: usize) {
        self.0.refuse.store(n, Ordering::SeqCst);
    }

    /// The next read of changes, once it has read them, waits for
    /// [`Faults::release_feed`]; returns when it has read them.
    pub(super) fn hold_feed(&self) {
        self.0.hold_feed.store(true, Ordering::SeqCst);
    }

    /// Waits until the held read of changes has read them.
    pub(super) async fn feed_read(&self) {
        self.0.feed_read.notified().await;
    }

    pub(super) fn release_feed(&self) {
        self.0.feed_release.notify_one();
    }

    /// `(transactions, results)` of refresh commits so far.
    pub(super) fn commits(&self) -> (usize, usize) {
        (
            self.0.transactions.load(Ordering::SeqCst),
            self.0.results.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl Backend for Faulty {
    fn cipher(&self) -> &Cipher {
        self.inner.cipher()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn close(&self) {
        self.inner.close().await
    }

    async fn count_grants(&self) -> Result<usize, StoreError> {
        self.inner.count_grants().await
    }

    async fn load_each(
        &self,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<i64, StoreError> {
        self.inner.load_each(each).await
    }

    async fn changes_since(&self, since: i64) -> Result<Changes, StoreError> {
        let changes = self.inner.changes_since(since).await;
        if self.hold_feed.swap(false, Ordering::SeqCst) {
            self.feed_read.notify_one();
            self.feed_release.notified().await;
        }
        changes
    }

    async fn put_credentials(
        &self,
        batch: &[NewCredential<'_>],
    ) -> Result<Vec<PutOutcome>, StoreError> {
        self.inner.put_credentials(batch).await
    }

    async fn delete_credential(&self, id: &str) -> Result<Option<DeleteOutcome>, StoreError> {
        self.inner.delete_credential(id).await
    }

    async fn get_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        self.inner.get_grant(id).await
    }

    async fn grant_id_of(&self, credential_id: &str) -> Result<Option<GrantId>, StoreError> {
        self.inner.grant_id_of(credential_id).await
    }

    async fn grant_by_refresh_token(
        &self,
        provider: &str,
        refresh_token: &SecretString,
    ) -> Result<Option<GrantId>, StoreError> {
        self.inner
            .grant_by_refresh_token(provider, refresh_token)
            .await
    }

    async fn get_credential(&self, id: &str) -> Result<Option<CredentialView>, StoreError> {
        self.inner.get_credential(id).await
    }

    async fn list_credentials(
        &self,
        filter: &ListFilter,
        patterns: &[String],
    ) -> Result<Vec<CredentialView>, StoreError> {
        self.inner.list_credentials(filter, patterns).await
    }

    async fn claim(&self, grant_id: GrantId, lease_ms: i64) -> Result<Claim, StoreError> {
        self.inner.claim(grant_id, lease_ms).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }

    async fn commit_refreshes(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        self.transactions.fetch_add(1, Ordering::SeqCst);
        self.results.fetch_add(batch.len(), Ordering::SeqCst);
        let refused = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err(StoreError::Unwritable {
                database: self.inner.location(),
                reason: "disk full (injected)".into(),
            });
        }
        self.inner.commit_refreshes(batch).await
    }

    async fn record_failure(
        &self,
        lease: &Lease,
        error: &str,
        next_refresh_at: UnixMillis,
    ) -> Result<Option<i64>, StoreError> {
        self.inner
            .record_failure(lease, error, next_refresh_at)
            .await
    }

    async fn mark_needs_reauth(&self, lease: &Lease, error: &str) -> Result<bool, StoreError> {
        self.inner.mark_needs_reauth(lease, error).await
    }

    async fn rotate_key(&self, new_key: &MasterKey) -> Result<u64, StoreError> {
        self.inner.rotate_key(new_key).await
    }

    async fn export_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<crate::store::SealedGrant>, StoreError> {
        self.inner.export_page(after, limit).await
    }

    async fn import_sealed(&self, batch: &[crate::store::SealedGrant]) -> Result<(), StoreError> {
        self.inner.import_sealed(batch).await
    }
}
