//! The token a proxied request is sent with: the cached one while it may
//! be handed out, else one refreshed through the refresher's single-flight
//! entry points, the same as `GET /v1/tokens/{id}` and
//! `POST /v1/tokens/{id}/refresh` (with `rejected_token`) use.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use secrecy::SecretString;

use super::{Refusal, own};
use crate::api::error::ApiError;
use crate::api::state::Services;
use crate::api::{AppState, tokens};
use crate::cache::TokenEntry;
use crate::model::Status;

/// A still-valid access token of the credential, refreshed first
/// (single-flight) when it has expired: an expired token is never sent.
pub(super) async fn current(
    state: &AppState,
    services: &Services,
    entry: Arc<TokenEntry>,
    id: &str,
) -> Result<SecretString, Refusal> {
    // As a hand-out: not while a refresh of the grant calls the provider
    // (its old token may be revoked), nor inside the hand-out margin.
    if let Some((settled, false)) = services.cache.get_settled(id)
        && let Some(token) = usable(&settled, state.handout_now())
    {
        return Ok(token);
    }
    // Boxed: the wait for a refresh is a large future, and the common
    // case above would otherwise carry its size (and copy it) every time.
    let answer = Box::pin(tokens::current_token(state, services, entry, id, 0)).await;
    token_after(state, services, id, answer)
}

/// The token to resend with after the API refused `rejected`: the answer
/// of `POST /v1/tokens/{id}/refresh` with `rejected_token`.
pub(super) async fn after_rejection(
    state: &AppState,
    services: &Services,
    id: &str,
    rejected: &SecretString,
) -> Result<SecretString, Refusal> {
    let entry = services
        .cache
        .get(id)
        .ok_or_else(|| own(ApiError::NotFound))?;
    let answer = Box::pin(tokens::refresh_rejected(
        state,
        services,
        entry,
        id,
        Some(rejected),
    ))
    .await;
    token_after(state, services, id, answer)
}

/// The token the cache holds once a token answer was 200; that answer's
/// error (tokend's own) otherwise.
fn token_after(
    state: &AppState,
    services: &Services,
    id: &str,
    answer: Result<Response, ApiError>,
) -> Result<SecretString, Refusal> {
    let answer = answer.map_err(own)?;
    if answer.status() != StatusCode::OK {
        return Err(Box::new(answer));
    }
    let entry = services
        .cache
        .get(id)
        .ok_or_else(|| own(ApiError::NotFound))?;
    usable(&entry, state.handout_now()).ok_or_else(|| {
        own(ApiError::ProviderUnavailable {
            retry_after: 1,
            message: "no valid token can be handed out yet; try again".into(),
        })
    })
}

/// The entry's token if it may be sent: an active grant, not expired at
/// `at` (the hand-out instant: now plus `refresh.handout_margin_ms`, so a
/// token does not run out on its way, as for `GET /v1/tokens/{id}`).
fn usable(entry: &TokenEntry, at: crate::clock::UnixMillis) -> Option<SecretString> {
    let access = entry.access.as_ref()?;
    (entry.status == Status::Active && access.remaining_ms(at) > 0)
        .then(|| entry.access_token())
        .flatten()
}
