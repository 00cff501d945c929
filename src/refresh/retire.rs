//! Credentials leaving: delete, and with `revoke=true` the grant revoked at
//! the provider first (refused when other credentials share it; an
//! unreachable provider keeps the credential).

use super::Refresher;
use super::error::{DeleteError, ProviderFailure};
use crate::provider::ProviderError;

impl Refresher {
    /// Deletes credential `id`; with `revoke`, first revokes its grant at the
    /// provider (refused when other credentials share the grant; an
    /// unreachable provider keeps the credential).
    #[tracing::instrument(skip_all, fields(credential_id = %id, revoke))]
    pub async fn delete(&self, id: &str, revoke: bool) -> Result<(), DeleteError> {
        let store = &self.inner.store;
        let grant_id = store.grant_id_of(id).await?.ok_or(DeleteError::NotFound)?;
        if revoke {
            let grant = store
                .get_grant(grant_id)
                .await?
                .ok_or(DeleteError::NotFound)?;
            if grant.state.credentials.len() > 1 {
                let others = grant.state.credentials.iter().map(|c| c.id.clone());
                return Err(DeleteError::GrantShared {
                    others: others.filter(|c| c != id).collect(),
                });
            }
            if !self.store_takes_writes() {
                return Err(DeleteError::StoreUnavailable);
            }
            let provider = self.provider(&grant.state.provider).ok_or_else(|| {
                DeleteError::Refused(format!(
                    "provider {} is not configured",
                    grant.state.provider
                ))
            })?;
            match provider.revoke(&grant.refresh_token).await {
                // Already dead at the provider: nothing left to revoke.
                Ok(()) | Err(ProviderError::InvalidGrant { .. }) => {}
                Err(ProviderError::Refused(m)) => return Err(DeleteError::Refused(m)),
                Err(e) => {
                    let now = self.inner.clock.now();
                    return Err(DeleteError::Provider(ProviderFailure::new(e, now)));
                }
            }
        }
        // No batch of changes read before the deletion is applied after it.
        let _feed = self.inner.feed.lock().await;
        let out = store
            .delete_credential(id)
            .await
            .map_err(|e| self.report_store(e))?
            .ok_or(DeleteError::NotFound)?;
        self.inner.cache.remove_credential(id);
        if out.grant_deleted {
            self.forget(out.grant_id);
        }
        Ok(())
    }
}
