//! `GET /v1/tokens/{id}` and `POST /v1/tokens/{id}/refresh`.
//!
//! The hot path is a cache lookup and one integer formatted into a body
//! rendered at publish time. Anything that needs the provider goes through
//! the refresher's single-flight entry point.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::checks::{may_read, readable_entry};
use super::error::{ApiError, retry_after_secs};
use super::{AppState, Caller, CredentialId, OptionalJson, Query, Services};
use crate::cache::{Cache, TokenEntry};
use crate::clock::UnixMillis;
use crate::model::Status;
use crate::refresh::{Outcome, RefreshError, Trigger};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Seconds the handed-out token must still be valid for.
    min_ttl: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The token the provider refused (answered 401 to).
    rejected_token: Option<SecretString>,
}

pub async fn get_token(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let min_ttl_ms = query
        .min_ttl
        .unwrap_or(0)
        .saturating_mul(1000)
        .min(i64::MAX as u64) as i64;
    let entry = readable_entry(&services.cache, &client, &id)?;
    current_token(&state, services, entry, &id, min_ttl_ms).await
}

/// The token response for `entry` with more than `min_ttl_ms` left,
/// refreshed first (single-flight) when it has less. The proxy shares it.
pub(super) async fn current_token(
    state: &AppState,
    services: &Services,
    entry: Arc<TokenEntry>,
    id: &str,
    min_ttl_ms: i64,
) -> Result<Response, ApiError> {
    let entry = settled(state, services, id, entry).await;
    let now = state.now();
    if let Some(response) = respond(&entry, state.handout_now(), min_ttl_ms) {
        return Ok(response);
    }
    reachable(state, &entry, min_ttl_ms)?;
    // Failing grants are retried on the refresher's backoff, not per request.
    if entry.consecutive_failures() > 0
        && let Some(next) = entry.next_refresh_at().filter(|&t| t > now)
    {
        return Err(unavailable(&entry, next, now));
    }
    let result = services
        .refresher
        .refresh_grant(entry.grant_id, Trigger::MinTtl(min_ttl_ms))
        .await;
    after_refresh(state, &services.cache, id, result, min_ttl_ms)
}

pub async fn force_refresh(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
    OptionalJson(body): OptionalJson<RefreshBody>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let entry = readable_entry(&services.cache, &client, &id)?;
    refresh_rejected(&state, services, entry, &id, body.rejected_token.as_ref()).await
}

/// `POST /v1/tokens/{id}/refresh` once the caller is cleared: a forced
/// refresh unless `rejected` names an older token than the current one,
/// within the per-grant window. The proxy shares it after an API's 401.
pub(super) async fn refresh_rejected(
    state: &AppState,
    services: &Services,
    entry: Arc<TokenEntry>,
    id: &str,
    rejected: Option<&SecretString>,
) -> Result<Response, ApiError> {
    let refresher = &services.refresher;
    let now = state.now();
    if entry.status == Status::NeedsReauth {
        return Err(ApiError::NeedsReauth(
            entry.last_error().unwrap_or_default().to_owned(),
        ));
    }
    let names_current = match (rejected, &entry.access) {
        (Some(rejected), Some(_)) => entry.is_token(rejected.expose_secret()),
        _ => false,
    };
    // The caller holds an older token than the current one: that is the answer.
    if rejected.is_some()
        && !names_current
        && let Some(response) = respond(&entry, state.handout_now(), 0)
    {
        return Ok(response);
    }
    if let Err(window_end) = refresher.claim_forced_refresh(entry.grant_id, now) {
        // Inside the window: join a refresh under way, else no provider call.
        if !refresher.is_refreshing(entry.grant_id) {
            if names_current {
                return Err(ApiError::RateLimited {
                    retry_after: retry_after_secs(window_end, now),
                });
            }
            if let Some(response) = respond(&entry, state.handout_now(), 0) {
                return Ok(response);
            }
        }
    }
    let trigger = Trigger::Forced {
        seen_generation: entry.generation,
    };
    let result = refresher.refresh_grant(entry.grant_id, trigger).await;
    after_refresh(state, &services.cache, id, result, 0)
}

/// The credential's entry with no refresh of its grant calling the
/// provider: while one is, the hand-out waits for its result (some servers
/// revoke the old access token the moment they issue the new one), at most
/// `refresh.handout_wait_ms`; then the entry as it stands (the old token,
/// handed out if still valid).
async fn settled(
    state: &AppState,
    services: &Services,
    id: &str,
    entry: Arc<TokenEntry>,
) -> Arc<TokenEntry> {
    match services.cache.get_settled(id) {
        Some((current, false)) => current,
        Some((current, true)) => {
            services
                .refresher
                .wait_for(current.grant_id, state.handout_wait())
                .await;
            services.cache.get(id).unwrap_or(current)
        }
        None => entry,
    }
}

/// The cache entry of a credential this client's patterns match (the
/// proxy's check): 403 before 404. Recorded as handed out, the proxy's use
/// included: the refresh budget keeps recently used grants warm.
pub(super) fn visible_entry(
    cache: &Cache,
    client: &super::auth::Client,
    id: &str,
) -> Result<Arc<TokenEntry>, ApiError> {
    may_read(client, id)?;
    cache.hand_out(id).ok_or(ApiError::NotFound)
}

/// The answer once a refresh the request asked for has ended, read from
/// the cache the refresh published to.
fn after_refresh(
    state: &AppState,
    cache: &Cache,
    id: &str,
    result: Result<Outcome, RefreshError>,
    min_ttl_ms: i64,
) -> Result<Response, ApiError> {
    let now = state.now();
    let entry = cache.get(id).ok_or(ApiError::NotFound)?;
    match result {
        Ok(_) => respond(&entry, state.handout_now(), min_ttl_ms).ok_or_else(|| {
            // The provider's fresh token: its lifetime is known now.
            if let Err(e) = reachable(state, &entry, min_ttl_ms) {
                return e;
            }
            let next = entry.next_refresh_at().unwrap_or(now + 5_000);
            unavailable(&entry, next, now)
        }),
        // A transient failure: 503 with when the refresher tries next.
        Err(e) if e.is_transient() => {
            let next = e.retry_at().unwrap_or(now + 5_000);
            Err(unavailable(&entry, next, now))
        }
        Err(e) => Err(e.into()),
    }
}

/// 400 when no refresh could meet `min_ttl`: it is not shorter than the
/// lifetime the provider issued this grant's token with, or than
/// `refresh.max_lifetime_secs`, which bounds every lifetime. A lifetime the
/// provider did not issue (an imported token's remaining time) bounds
/// nothing: the refresh shows what the provider issues.
fn reachable(state: &AppState, entry: &TokenEntry, min_ttl_ms: i64) -> Result<(), ApiError> {
    let max = state.config().refresh.max_lifetime_secs as i64;
    let (limit, what) = match entry.issued_lifetime_secs() {
        Some(issued) if issued < max => (issued, "this provider's token lifetime"),
        _ => (max, "refresh.max_lifetime_secs"),
    };
    if limit.saturating_mul(1000) - state.handout_margin_ms() > min_ttl_ms {
        return Ok(());
    }
    Err(ApiError::InvalidRequest(format!(
        "min_ttl is not shorter than {what} ({limit} s): no refresh could meet it; ask for less"
    )))
}

fn unavailable(entry: &TokenEntry, next: UnixMillis, now: UnixMillis) -> ApiError {
    let why = entry
        .last_error()
        .unwrap_or("no token with enough time left");
    ApiError::ProviderUnavailable {
        retry_after: retry_after_secs(next, now),
        message: format!("no valid token can be handed out; the provider is failing: {why}"),
    }
}

/// The token response if the entry has a token with more than `min_ttl_ms`
/// left at `at` (the hand-out instant, [`AppState::handout_now`]); `None`
/// when a refresh is needed. A dead grant is 409 whatever its
/// token's expiry: a person must re-authorize.
pub(super) fn respond(entry: &TokenEntry, at: UnixMillis, min_ttl_ms: i64) -> Option<Response> {
    if entry.status == Status::NeedsReauth {
        let message = entry.last_error().unwrap_or_default().to_owned();
        return Some(ApiError::NeedsReauth(message).into_response());
    }
    let access = entry.access.as_ref()?;
    let remaining = access.remaining_ms(at);
    if remaining <= min_ttl_ms || remaining <= 0 {
        return None;
    }
    // The body is written once, into a buffer of exactly its size when
    // there is no warning (the common case): the response's `Bytes` then
    // take the buffer over without another allocation.
    let mut secs = itoa::Buffer::new();
    let secs = secs.format(remaining / 1000).as_bytes();
    const EXPIRES_IN: &[u8] = b",\"expires_in\":";
    let mut body = Vec::with_capacity(entry.body_prefix_len() + EXPIRES_IN.len() + secs.len() + 1);
    entry.push_body_prefix(&mut body);
    body.extend_from_slice(EXPIRES_IN);
    body.extend_from_slice(secs);
    if entry.consecutive_failures() > 0 {
        let warning = format!(
            "refreshing this token has failed {} time(s) in a row ({}); it is still valid",
            entry.consecutive_failures(),
            entry.last_error().unwrap_or("unknown error")
        );
        body.extend_from_slice(b",\"warnings\":[");
        body.extend_from_slice(serde_json::Value::String(warning).to_string().as_bytes());
        body.push(b']');
    }
    body.push(b'}');
    // The JSON content type and the common headers in one copy of a
    // prepared map (the router's layer sets the last two again: same values).
    let mut response = Response::new(Body::from(body));
    *response.headers_mut() = super::json_headers();
    Some(response)
}
