//! Credentials leaving: delete, and with `revoke=true` the grant revoked at
//! the provider first (refused when other credentials share it; an
//! unreachable provider keeps the credential).

use super::Refresher;
use crate::provider::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such credential")]
    NotFound,
    #[error("other credentials share this grant; delete them first or delete without revoke=true")]
    GrantShared,
    #[error(transparent)]
    Provider(ProviderError),
    #[error("{0}")]
    Refused(String),
    #[error("storage error: {0}")]
    Store(String),
}

impl Refresher {
    /// Deletes credential `id`; with `revoke`, first revokes its grant at the
    /// provider (refused when other credentials share the grant; an
    /// unreachable provider keeps the credential).
    pub async fn delete(&self, id: &str, revoke: bool) -> Result<(), DeleteError> {
        let store = self.store();
        let err = |e: crate::store::StoreError| DeleteError::Store(e.to_string());
        let grant_id = store
            .grant_id_of(id)
            .await
            .map_err(err)?
            .ok_or(DeleteError::NotFound)?;
        if revoke {
            if store.credential_count(grant_id).await.map_err(err)? > 1 {
                return Err(DeleteError::GrantShared);
            }
            let grant = store
                .get_grant(grant_id)
                .await
                .map_err(err)?
                .ok_or(DeleteError::NotFound)?;
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
                Err(e) => return Err(DeleteError::Provider(e)),
            }
        }
        let out = store
            .delete_credential(id)
            .await
            .map_err(err)?
            .ok_or(DeleteError::NotFound)?;
        self.cache().remove_credential(id);
        if out.grant_deleted {
            self.forget(out.grant_id);
        }
        Ok(())
    }
}
