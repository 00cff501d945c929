//! The store seam: what the refresher, the API, the CLI and the daemon ask
//! of storage, in their words ("claim this grant", "commit this result",
//! "changes since"). SQLite answers it in `sqlite/`; a second backend
//! answers it in a folder of its own and is chosen where the store is
//! opened. Nothing outside `store/` names a backend; [`super`] lists the
//! steps of adding one.
//!
//! # What every backend guarantees
//!
//! **Sealing.** Token columns (access, refresh and previous refresh token)
//! are sealed with [`Cipher`] before they leave the process and opened after
//! they come back, with the grant id and column as associated data
//! ([`Field`](super::crypto::Field)): the same bytes whatever the backend, so a
//! sealed value can be copied between backends as it is. Refresh tokens are
//! found by [`Cipher::lookup_hash`], never by their plaintext. Opening a
//! store checks the key: a database holding data sealed under another key is
//! refused with [`StoreError::WrongKey`] before anything is read or written;
//! an empty one records the key's check value. Opening also applies the
//! backend's migrations (safe when several processes open at once).
//!
//! **Durability.** Every method that writes returns only once the write is
//! durable (SQLite: committed with `synchronous=FULL`; a server: committed
//! and acknowledged): a `kill -9` or a power cut after the return cannot take
//! it back. This is what lets the refresher hand a token out only after it
//! is committed. Refresh *leases* are the one exception: they may be lost to
//! a power cut, because their holder is lost with it.
//!
//! **Atomicity.** Each method is one transaction: it happens whole or not at
//! all, and a reader (another process included) sees all of it or none of it.
//! A batch ([`Backend::put_credentials`], [`Backend::commit_refreshes`]) is
//! one transaction too: one durable commit for the whole batch.
//!
//! **Generations.** A grant's `generation` is bumped by every write of its
//! tokens (a refresh, an import that brings a longer-lived access token, a
//! key rotation). A refresh is committed with compare-and-set: only if the
//! grant is still at the generation the refresh read, so of two writers that
//! read the same generation exactly one wins and the other learns
//! [`CommitOutcome::Conflict`] and writes nothing. Status and failure
//! writes do not bump it.
//!
//! **Leases and their fencing generation.** A refresh calls the provider
//! while holding the grant's lease ([`Backend::claim`]), so that one refresh
//! token is spent once however many processes share the database. A lease
//! is taken by one owner (one opened store: a daemon or a CLI command) until
//! it expires; an expired lease is taken over, and so is one whose owner is
//! provably gone (the owner text of [`super::owner`], checked with
//! [`super::owner::is_provably_dead`]). No transaction, row lock or
//! advisory lock may be held while the lease is held: the caller calls the
//! provider between `claim` and its write. The lease carries the grant's
//! generation at the claim ([`Lease::generation`]): failure and
//! needs-reauth writes under the lease apply only while the grant is still at
//! it, so a holder whose lease expired and whose grant moved on (someone else
//! refreshed it) changes nothing. A successful commit, a recorded failure and
//! a needs-reauth mark release the owner's lease in the same transaction.
//!
//! **The change feed.** Every write transaction gets the next change number
//! and stamps what it touches; [`Backend::changes_since`] returns everything
//! written after a number, so a cache that loaded at number `n` and applies
//! the changes since `n` holds what the store holds, whoever wrote it.
//! Deleted credentials are reported as deleted.
//!
//! **Errors.** A failure is a [`StoreError`] that keeps its cause; a write
//! that returns an error changed nothing, and leaves nothing behind that
//! breaks the next call (SQLite: a connection whose transaction failed is
//! never handed out again). A failure that means the store cannot take
//! writes now (a full disk, a lost server) is one that
//! [`StoreError::is_outage`] recognises: callers report it to the store's
//! [`super::StoreHealth`].

use async_trait::async_trait;
use secrecy::SecretString;

use super::StoreError;
use super::crypto::{Cipher, MasterKey};
use super::types::{
    Changes, Claim, CommitOutcome, DeleteOutcome, Lease, ListFilter, NewCredential, PutOutcome,
    SealedGrant, TokenCommit,
};
use crate::clock::UnixMillis;
use crate::model::{CredentialView, Grant, GrantId, GrantState};
use crate::provider::bucket::SharedBuckets;

/// How long [`Backend::wait_for_changes`] waits by default: the delay with
/// which a backend that cannot be told of other writers' changes sees them.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Storage of grants and credentials. See the module documentation for the
/// guarantees every implementation gives.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The sealing of this store (its key id, and the key the API signs
    /// authorization `state` with).
    fn cipher(&self) -> &Cipher;

    /// Where the data lives, for logs and errors: a file path, or a URL with
    /// any password redacted. Never a secret.
    fn location(&self) -> String;

    /// The rate buckets every process on this store shares (cluster mode:
    /// request limits, 429 pauses and refresh budgets hold for all members
    /// together), or `None` where each process keeps its own (SQLite).
    fn shared_buckets(&self) -> Option<std::sync::Arc<dyn SharedBuckets>> {
        None
    }

    /// A cheap liveness probe.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Proves that the store takes a durable write now (a small real write
    /// that changes nothing anyone reads) and is still the store that was
    /// opened. [`super::StoreHealth::watch`] asks it every second while the
    /// store is down. The default pings: enough for a server whose outages
    /// are lost connections.
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.ping().await
    }

    /// Waits for statements in flight and releases connections (SQLite also
    /// checkpoints its WAL). The store is not used afterwards.
    async fn close(&self);

    /// How many grants there are: sizes what a full load fills. May be
    /// slightly stale.
    async fn count_grants(&self) -> Result<usize, StoreError>;

    /// Calls `each` with every grant once (access token opened, refresh
    /// tokens left out, credentials in id order), a page at a time: memory
    /// stays that of a page however many grants there are. The order of
    /// the grants is the backend's (SQLite: grant id; PostgreSQL: where the
    /// rows lie in the table, which reads fastest).
    /// Returns the change number the grants reflect, read in the same
    /// snapshot, to continue with [`Backend::changes_since`].
    async fn load_each(&self, each: &mut (dyn FnMut(GrantState) + Send))
    -> Result<i64, StoreError>;

    /// Everything written after change number `since`, by any process, and
    /// the change number it brings the caller up to.
    async fn changes_since(&self, since: i64) -> Result<Changes, StoreError>;

    /// Returns when other writers' changes may be waiting for
    /// [`Backend::changes_since`]. The default waits [`POLL_INTERVAL`]; a
    /// backend that is told of changes (PostgreSQL `LISTEN`) returns when it
    /// is, and also when its notification channel was lost and is back, so
    /// that the caller catches up on what it missed meanwhile.
    async fn wait_for_changes(&self) {
        tokio::time::sleep(POLL_INTERVAL).await;
    }

    /// Creates or replaces each credential of `batch`, in order, in one
    /// transaction (all or none). A credential whose refresh token a grant of
    /// the same provider already holds (found by lookup hash) is linked to
    /// that grant, which keeps whichever access token lasts longer, and
    /// starts with the grant's current extras (its credentials', the
    /// latest-written last) with its own merged over them; else a
    /// new grant is created. A credential moved off a grant that no other
    /// credential uses deletes that grant. Later entries see earlier ones.
    /// Keep batches to some thousands: other writers wait for the commit.
    async fn put_credentials(
        &self,
        batch: &[NewCredential<'_>],
    ) -> Result<Vec<PutOutcome>, StoreError>;

    /// [`Backend::put_credentials`] for one credential.
    async fn put_credential(&self, new: &NewCredential<'_>) -> Result<PutOutcome, StoreError> {
        let mut out = self.put_credentials(std::slice::from_ref(new)).await?;
        out.pop()
            .ok_or_else(|| StoreError::Corrupt("a put of one credential reported none".into()))
    }

    /// Deletes a credential, and its grant when no other credential uses it;
    /// `None` when there was no such credential (nothing changed).
    async fn delete_credential(&self, id: &str) -> Result<Option<DeleteOutcome>, StoreError>;

    /// The grant with its refresh tokens opened.
    async fn get_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError>;

    /// The grant a credential points at.
    async fn grant_id_of(&self, credential_id: &str) -> Result<Option<GrantId>, StoreError>;

    /// The grant of `provider` that holds this refresh token, if any.
    async fn grant_by_refresh_token(
        &self,
        provider: &str,
        refresh_token: &SecretString,
    ) -> Result<Option<GrantId>, StoreError>;

    async fn get_credential(&self, id: &str) -> Result<Option<CredentialView>, StoreError>;

    /// Credentials in id order, filtered, one page. Only ids matching one
    /// of `patterns` (shell style: `*` any run, `?` one character; ids
    /// contain no other special characters) are counted and returned, so
    /// paging counts only what the caller may see.
    async fn list_credentials(
        &self,
        filter: &ListFilter,
        patterns: &[String],
    ) -> Result<Vec<CredentialView>, StoreError>;

    /// Claims the grant for a refresh: takes its lease for `lease_ms`
    /// (measured by the backend's clock) unless another owner holds an
    /// unexpired one, then reads the grant. This owner's own unexpired lease
    /// is taken again. Durable enough to be seen by every other process
    /// sharing the store before it returns.
    async fn claim(&self, grant_id: GrantId, lease_ms: i64) -> Result<Claim, StoreError>;

    /// Gives the lease back if this owner still holds it (no refresh was
    /// committed under it: nothing was due, or the attempt failed early).
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Writes each refresh result of `batch` with its own compare-and-set,
    /// all in one transaction and one durable commit (group commit). A
    /// conflict on one does not stop the others; an error writes none. The
    /// refresh token that is replaced becomes the previous one (kept, sealed,
    /// to recover from a crash between the provider's answer and the commit);
    /// the grant becomes active with no failures; this owner's lease on it
    /// is released. Outcomes come back in `batch` order.
    async fn commit_refreshes(
        &self,
        batch: &[TokenCommit],
    ) -> Result<Vec<CommitOutcome>, StoreError>;

    /// [`Backend::commit_refreshes`] for one result.
    async fn commit_refresh(&self, commit: &TokenCommit) -> Result<CommitOutcome, StoreError> {
        let mut out = self.commit_refreshes(std::slice::from_ref(commit)).await?;
        Ok(out.pop().unwrap_or(CommitOutcome::Conflict))
    }

    /// Records a failed refresh attempt that is worth retrying at
    /// `next_refresh_at` and releases the lease. Returns the number of
    /// consecutive failures now, or `None` when the grant has moved past the
    /// lease's generation (or is gone) and nothing was written.
    async fn record_failure(
        &self,
        lease: &Lease,
        error: &str,
        next_refresh_at: UnixMillis,
    ) -> Result<Option<i64>, StoreError>;

    /// The provider refused the refresh token for good: the grant needs a
    /// person to re-authorize and is not refreshed again. Releases the
    /// lease. `false` when the grant has moved past the lease's generation
    /// (or is gone) and nothing was written.
    async fn mark_needs_reauth(&self, lease: &Lease, error: &str) -> Result<bool, StoreError>;

    /// Records when credentials were last handed out (`(credential id, at)`),
    /// keeping a later time already recorded; unknown ids are skipped. One
    /// transaction, written about once a minute: it only orders which grants
    /// the refresh budget keeps warm after a restart, so it is not part of
    /// the change feed. The default records nothing (the order starts afresh
    /// at each start).
    async fn record_hand_outs(&self, batch: &[(String, UnixMillis)]) -> Result<(), StoreError> {
        let _ = batch;
        Ok(())
    }

    /// Calls `each` with every credential's recorded last hand-out, a page
    /// at a time (read at start). The default has none.
    async fn hand_outs_each(
        &self,
        each: &mut (dyn for<'s> FnMut(&'s str, UnixMillis) + Send),
    ) -> Result<(), StoreError> {
        let _ = each;
        Ok(())
    }

    /// Calls `each` with every credential handed out after `since` as
    /// recorded (by any process): how a cluster's members learn each
    /// other's hand-outs, so the refresh budget's order is the cluster's.
    /// The default has none (SQLite: one daemon per database).
    async fn hand_outs_since(
        &self,
        since: UnixMillis,
        each: &mut (dyn for<'s> FnMut(&'s str, UnixMillis) + Send),
    ) -> Result<(), StoreError> {
        let _ = (since, each);
        Ok(())
    }

    /// Re-seals every token under `new_key`, recomputes the lookup hashes,
    /// bumps every grant's generation (so a process still holding the old key
    /// loses its compare-and-set instead of writing old-key rows) and records
    /// the new key's check value, in one transaction. Returns the number of
    /// grants re-sealed. The store is unusable afterwards: open it again with
    /// the new key.
    async fn rotate_key(&self, new_key: &MasterKey) -> Result<u64, StoreError>;

    /// Up to `limit` grants as stored (tokens sealed, each with its
    /// credentials), the first with an id above `after`, in id order: the
    /// source of `copy-store`, read page by page while nobody writes.
    async fn export_page(&self, after: i64, limit: i64) -> Result<Vec<SealedGrant>, StoreError>;

    /// Writes grants as [`Backend::export_page`] gave them (ids, sealed
    /// tokens, lookup hashes, statuses and times kept; leases not), in one
    /// transaction: the target of `copy-store`, which must hold no grant
    /// with these ids. The data must be sealed under this store's key.
    async fn import_sealed(&self, batch: &[SealedGrant]) -> Result<(), StoreError>;
}
