//! New credentials: one at a time (import, code exchange, application
//! calendar) or many in one transaction (bulk imports, benchmarks). A
//! credential whose refresh token a grant of the same provider already holds
//! is linked to that grant instead of creating a second one.

use sqlx::{Sqlite, Transaction};

use super::crypto::Field;
use super::write::delete_grant_if_unused;
use super::{Store, StoreError, next_change_seq};
use crate::clock::UnixMillis;
use crate::store::model::*;

impl Store {
    /// Creates or replaces credential `new.id`. When a grant of the same
    /// provider already holds the refresh token, the credential is linked to
    /// it instead of creating a second grant.
    #[tracing::instrument(skip_all, fields(credential_id = new.id, provider = new.provider), err)]
    pub async fn put_credential(&self, new: &NewCredential<'_>) -> Result<PutOutcome, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let outcome = self.put_in(&mut tx, seq, now, new).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// [`Store::put_credential`] for each of `batch`, in order, in one
    /// transaction: one commit (one fsync) for all of them, and all or none
    /// are stored. Later entries see earlier ones, so two entries with the
    /// same refresh token share one grant. Keep batches to some thousands:
    /// the write lock is held until the commit, and every other writer (the
    /// refresher, the CLI) waits for it.
    #[tracing::instrument(skip_all, fields(count = batch.len()), err)]
    pub async fn put_credentials(
        &self,
        batch: &[NewCredential<'_>],
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let seq = next_change_seq(&mut tx).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            outcomes.push(self.put_in(&mut tx, seq, now, new).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn put_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        seq: i64,
        now: UnixMillis,
        new: &NewCredential<'_>,
    ) -> Result<PutOutcome, StoreError> {
        let hash = self.cipher().lookup_hash(new.provider, new.refresh_token);
        let existing = sqlx::query!(
            r#"SELECT id AS "id!", expires_at FROM grants WHERE provider = ?1 AND refresh_token_hash = ?2"#,
            new.provider,
            hash
        )
        .fetch_optional(&mut **tx)
        .await?;

        let (grant_id, linked) = match existing {
            Some(row) => {
                let id = GrantId(row.id);
                // The provider just issued an access token on this refresh token,
                // so the grant lives; keep whichever access token lasts longer.
                if let Some(access) = new
                    .access
                    .filter(|a| row.expires_at.is_none_or(|e| a.expires_at > e))
                {
                    let sealed = self
                        .cipher()
                        .seal_secret(id.0, Field::AccessToken, &access.token);
                    sqlx::query!(
                        "UPDATE grants SET access_token = ?1, token_type = ?2, expires_at = ?3, lifetime_secs = ?4,
                             scope = coalesce(?5, scope), status = 'active', consecutive_failures = 0,
                             last_error = NULL, next_refresh_at = coalesce(?6, next_refresh_at),
                             last_refresh_at = coalesce(?10, last_refresh_at),
                             generation = generation + 1, updated_at = ?7, change_seq = ?8
                         WHERE id = ?9",
                        sealed,
                        access.token_type,
                        access.expires_at,
                        access.lifetime_secs,
                        new.scope,
                        new.next_refresh_at,
                        now,
                        seq,
                        id.0,
                        new.last_refresh_at
                    )
                    .execute(&mut **tx)
                    .await?;
                }
                (id, true)
            }
            None => {
                let id = GrantId(rand::random::<i64>() & i64::MAX);
                let refresh =
                    self.cipher()
                        .seal_secret(id.0, Field::RefreshToken, new.refresh_token);
                let access = new.access.map(|a| {
                    self.cipher()
                        .seal_secret(id.0, Field::AccessToken, &a.token)
                });
                let token_type = new.access.map_or("bearer", |a| a.token_type.as_str());
                let expires_at = new.access.map(|a| a.expires_at);
                let lifetime = new.access.map(|a| a.lifetime_secs);
                sqlx::query!(
                    "INSERT INTO grants (id, provider, refresh_token, refresh_token_hash, access_token,
                         token_type, scope, expires_at, lifetime_secs, application_calendar_id,
                         next_refresh_at, last_refresh_at, created_at, updated_at, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?14, ?12, ?12, ?13)",
                    id.0,
                    new.provider,
                    refresh,
                    hash,
                    access,
                    token_type,
                    new.scope,
                    expires_at,
                    lifetime,
                    new.application_calendar_id,
                    new.next_refresh_at,
                    now,
                    seq,
                    new.last_refresh_at
                )
                .execute(&mut **tx)
                .await?;
                (id, false)
            }
        };

        let extras = serde_json::to_string(new.extras).expect("a JSON map serializes");
        let previous =
            sqlx::query_scalar!("SELECT grant_id FROM credentials WHERE id = ?1", new.id)
                .fetch_optional(&mut **tx)
                .await?;
        let mut orphaned_grant = None;
        match previous {
            Some(old) => {
                sqlx::query!(
                    "UPDATE credentials SET grant_id = ?1, extras = ?2, updated_at = ?3, change_seq = ?4 WHERE id = ?5",
                    grant_id.0,
                    extras,
                    now,
                    seq,
                    new.id
                )
                .execute(&mut **tx)
                .await?;
                if old != grant_id.0 && delete_grant_if_unused(tx, old).await? {
                    orphaned_grant = Some(GrantId(old));
                }
            }
            None => {
                sqlx::query!(
                    "INSERT INTO credentials (id, grant_id, extras, created_at, updated_at, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                    new.id,
                    grant_id.0,
                    extras,
                    now,
                    seq
                )
                .execute(&mut **tx)
                .await?;
                sqlx::query!("DELETE FROM deleted_credentials WHERE id = ?1", new.id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(PutOutcome {
            created: previous.is_none(),
            grant_id,
            linked,
            orphaned_grant,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::clock::Clock;
    use crate::store::test_store;

    #[tokio::test]
    async fn a_batch_is_one_change_and_links_shared_refresh_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _key) = test_store(dir.path(), Clock::manual(1_700_000_000_000)).await;
        let tokens: Vec<SecretString> = ["rt-a", "rt-b", "rt-a"]
            .iter()
            .map(|t| SecretString::from(t.to_string()))
            .collect();
        let access = AccessToken {
            token: SecretString::from("at".to_owned()),
            token_type: "bearer".into(),
            expires_at: 1_700_003_600_000,
            lifetime_secs: 3600,
        };
        let extras = Extras::new();
        let ids = ["c1", "c2", "c3"];
        let batch: Vec<NewCredential<'_>> = ids
            .iter()
            .zip(&tokens)
            .map(|(id, rt)| NewCredential {
                id,
                provider: "cronofy",
                refresh_token: rt,
                access: Some(&access),
                scope: Some("read_write"),
                extras: &extras,
                application_calendar_id: None,
                next_refresh_at: Some(1_700_002_000_000),
                last_refresh_at: None,
            })
            .collect();
        let outcomes = store.put_credentials(&batch).await.unwrap();
        assert!(outcomes.iter().all(|o| o.created));
        assert_eq!(outcomes[2].grant_id, outcomes[0].grant_id);
        assert!(outcomes[2].linked && !outcomes[1].linked);

        let (seq, grants) = store.load_all().await.unwrap();
        assert_eq!(seq, 1, "one transaction, one change number");
        assert_eq!(grants.len(), 2);
        let shared = grants
            .iter()
            .find(|g| g.id == outcomes[0].grant_id)
            .unwrap();
        assert_eq!(shared.credentials.len(), 2);
        let stored = store
            .get_grant(outcomes[1].grant_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&stored.refresh_token),
            "rt-b"
        );
        assert_eq!(stored.state.next_refresh_at, Some(1_700_002_000_000));
        assert!(store.put_credentials(&[]).await.unwrap().is_empty());
    }
}
