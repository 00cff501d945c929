//! What the provider's `invalid_grant` really means, asked before the
//! verdict (step 3 of a `flight`): a refresh that replaced the token
//! meanwhile, the previous refresh token, an application calendar
//! provisioned again.

use secrecy::{ExposeSecret, SecretString};

use super::Refresher;
use crate::model::Grant;
use crate::provider::{Provider, ProviderError, TokenResponse};

/// What is left after the provider refused the current refresh token.
pub(super) enum AfterInvalidGrant {
    /// Another refresh replaced the token meanwhile; its result is published.
    Adopted,
    /// Another way in worked: store this answer. `used` is the refresh token
    /// that got it, kept when the answer carries none.
    Recovered {
        response: TokenResponse,
        used: SecretString,
    },
}

impl Refresher {
    /// The provider refused the current refresh token. Before the verdict:
    /// did another refresh replace it (a lost race)? Does the previous token
    /// still work (a crash between the provider's answer and our commit)?
    /// Can an application calendar be provisioned again?
    pub(super) async fn after_invalid_grant(
        &self,
        grant: &Grant,
        provider: &dyn Provider,
        description: String,
    ) -> Result<AfterInvalidGrant, ProviderError> {
        if let Ok(Some(now)) = self.inner.store.get_grant(grant.state.id).await
            && now.state.generation != grant.state.generation
        {
            tracing::info!(grant_id = %grant.state.id, provider = %grant.state.provider,
                "lost a refresh race to another process; using the winner's token");
            self.publish(&now.state);
            return Ok(AfterInvalidGrant::Adopted);
        }
        if let Some(previous) = &grant.previous_refresh_token
            && previous.expose_secret() != grant.refresh_token.expose_secret()
        {
            match provider.refresh(previous).await {
                Ok(response) => {
                    tracing::warn!(grant_id = %grant.state.id, provider = %grant.state.provider,
                        "the current refresh token was refused but the previous one worked");
                    return Ok(AfterInvalidGrant::Recovered {
                        response,
                        used: previous.clone(),
                    });
                }
                Err(ProviderError::InvalidGrant { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(calendar) = &grant.state.application_calendar_id {
            tracing::info!(grant_id = %grant.state.id, provider = %grant.state.provider,
                "application calendar token refused; provisioning it again");
            let response = provider.application_calendar(calendar).await?;
            return Ok(AfterInvalidGrant::Recovered {
                response,
                used: grant.refresh_token.clone(),
            });
        }
        Err(ProviderError::InvalidGrant { description })
    }
}
