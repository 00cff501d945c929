//! `GET /v1/authorize-url` and `POST /v1/callback`: the sign-in flow.
//!
//! The FAQ's answer to dynamic authorization URLs is the `state` parameter.
//! tokend puts the credential id, provider and redirect URI into it, signs
//! it (HMAC-SHA256 under a key derived from the encryption key, so it
//! survives restarts) and gives it ten minutes; the callback trusts nothing
//! else.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::credentials::{check_provider, check_redirect_uri, may_manage, view_response};
use super::error::ApiError;
use super::{AppState, Caller, Json, Query, check_id};
use crate::clock::UnixMillis;
use crate::provider::AuthorizationRequest;
use crate::store::Store;

/// How long a person has to come back from the provider.
pub const STATE_TTL_MS: i64 = 600_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlQuery {
    provider: String,
    credential_id: String,
    redirect_uri: String,
    scope: Option<String>,
    /// Cronofy: do not link with accounts authorized from the same browser.
    avoid_linking: Option<bool>,
    /// Cronofy: preselect the calendar provider.
    provider_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    code: SecretString,
    state: String,
}

/// What a `state` carries.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Claims {
    /// credential id
    c: String,
    /// provider
    p: String,
    /// redirect URI the code will be exchanged with
    r: String,
    /// expiry, Unix ms
    e: UnixMillis,
    /// makes every state unique
    n: String,
}

pub async fn url(
    State(state): State<AppState>,
    Caller(client): Caller,
    Query(q): Query<UrlQuery>,
) -> Result<Response, ApiError> {
    let refresher = state.refresher()?;
    check_id(&q.credential_id)?;
    check_provider(&state, &q.provider, None)?;
    check_redirect_uri(&state, &q.provider, &q.redirect_uri)?;
    may_manage(&client, &q.credential_id)?;
    let claims = Claims {
        c: q.credential_id.clone(),
        p: q.provider.clone(),
        r: q.redirect_uri.clone(),
        e: refresher.clock().now() + STATE_TTL_MS,
        n: hex::encode(rand::random::<[u8; 12]>()),
    };
    let signed = sign(refresher.store(), &claims);
    let url = refresher.authorization_url(
        &q.provider,
        &AuthorizationRequest {
            redirect_uri: &q.redirect_uri,
            scope: q.scope.as_deref(),
            state: &signed,
            avoid_linking: q.avoid_linking,
            provider_name: q.provider_name.as_deref(),
        },
    )?;
    Ok(axum::Json(json!({"url": url.as_str()})).into_response())
}

pub async fn callback(
    State(state): State<AppState>,
    Caller(client): Caller,
    Json(body): Json<CallbackBody>,
) -> Result<Response, ApiError> {
    let refresher = state.refresher()?;
    let claims = verify(refresher.store(), &body.state, refresher.clock().now())?;
    check_provider(&state, &claims.p, None)?;
    may_manage(&client, &claims.c)?;
    refresher
        .exchange_code(&claims.c, &claims.p, &body.code, &claims.r)
        .await?;
    view_response(refresher, &claims.c, true).await
}

fn sign(store: &Store, claims: &Claims) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mac = B64.encode(store.state_mac(payload.as_bytes()));
    format!("{payload}.{mac}")
}

fn verify(store: &Store, state: &str, now: UnixMillis) -> Result<Claims, ApiError> {
    let invalid =
        || ApiError::InvalidRequest("state is invalid or was not issued by this tokend".into());
    let (payload, mac) = state.split_once('.').ok_or_else(invalid)?;
    let mac = B64.decode(mac).map_err(|_| invalid())?;
    let expected = store.state_mac(payload.as_bytes());
    if !bool::from(expected.as_slice().ct_eq(&mac)) {
        return Err(invalid());
    }
    let claims: Claims = B64
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    if claims.e <= now {
        return Err(ApiError::InvalidRequest(
            "state has expired: start the authorization again".into(),
        ));
    }
    check_id(&claims.c)?;
    Ok(claims)
}
