//! What a credential request must pass before anything is done: the
//! client's rights to the credential (and, for a token, to receive it), a
//! configured provider (of the needed kind), a registered redirect URI.

use std::sync::Arc;

use super::AppState;
use super::auth::Client;
use super::error::ApiError;
use crate::cache::{Cache, TokenEntry};
use crate::config::ProviderKind;

/// 403 unless the client's patterns match the credential.
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

/// The cache entry of a credential whose tokens this client may receive:
/// 403 before 404.
pub(super) fn readable_entry(
    cache: &Cache,
    client: &Client,
    id: &str,
) -> Result<Arc<TokenEntry>, ApiError> {
    readable(cache, client, id).map(|(entry, _)| entry)
}

/// [`readable_entry`], and whether a refresh of its grant is calling the
/// provider now, read with it ([`Cache::get_settled`]): then a hand-out
/// waits for the new token.
pub(super) fn readable(
    cache: &Cache,
    client: &Client,
    id: &str,
) -> Result<(Arc<TokenEntry>, bool), ApiError> {
    if !client.read_tokens {
        return Err(ApiError::Forbidden(format!(
            "client {:?} has read_tokens = false: it may use /v1/proxy but never receives a token",
            client.name
        )));
    }
    may_read(client, id)?;
    cache.get_settled(id).ok_or(ApiError::NotFound)
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
