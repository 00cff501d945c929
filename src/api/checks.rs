//! What a credential request must pass before anything is done: the
//! client's rights to the credential, a configured provider (of the needed
//! kind), a registered redirect URI.

use super::AppState;
use super::auth::Client;
use super::error::ApiError;
use crate::config::ProviderKind;

pub(super) fn may_read(client: &Client, id: &str) -> Result<(), ApiError> {
    if client.may_read(id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "client {:?} may not read credential {id:?}",
            client.name
        )))
    }
}

pub(super) fn may_manage(client: &Client, id: &str) -> Result<(), ApiError> {
    may_read(client, id)?;
    if client.manage {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "client {:?} may not change credentials (manage = false)",
            client.name
        )))
    }
}

/// 400 for a provider that is not configured (or not of the needed kind).
pub(super) fn check_provider(
    state: &AppState,
    name: &str,
    kind: Option<ProviderKind>,
) -> Result<(), ApiError> {
    let config = state.config();
    match config.providers.get(name) {
        None => Err(ApiError::InvalidRequest(format!(
            "unknown provider: use one of those configured ({})",
            config
                .providers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Some(p) if kind.is_some_and(|k| k != p.kind) => Err(ApiError::InvalidRequest(format!(
            "provider {name:?} is not a Cronofy provider; application calendars are Cronofy's"
        ))),
        Some(_) => Ok(()),
    }
}

/// A `redirect_uri` not registered for the provider is refused before any call.
pub(super) fn check_redirect_uri(
    state: &AppState,
    provider: &str,
    uri: &str,
) -> Result<(), ApiError> {
    let config = state.config();
    let allowed = config
        .providers
        .get(provider)
        .is_some_and(|p| p.redirect_uris.iter().any(|u| u == uri));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "redirect_uri is not one of providers.{provider}.redirect_uris"
        )))
    }
}
