//! `GET /v1/authorize-url` and `POST /v1/callback`: the sign-in flow.
//!
//! The FAQ's answer to dynamic authorization URLs is the `state` parameter.
//! tokend puts the credential id, provider and redirect URI into it, signs
//! it (HMAC-SHA256 under a key derived from the encryption key, so it
//! survives restarts) and gives it ten minutes; the callback trusts nothing
//! else.
//!
//! PKCE (RFC 7636): the URL carries the `S256` challenge of a verifier that
//! is derived, on both ends, from the state key and the state's nonce. So
//! the verifier never travels through the browser, nothing is stored
//! between the two calls, and a restart (or another cluster member, which
//! holds the same key) can finish the exchange. The callback also checks
//! RFC 9207's `iss` against the provider's configured `issuer`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::audit::{self, Action};
use super::checks::{check_provider, check_redirect_uri, may_manage};
use super::credentials::view_response;
use super::error::ApiError;
use super::{AppState, Caller, Json, Query, check_id};
use crate::clock::UnixMillis;
use crate::refresh::{AuthorizationRequest, pkce};
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
    /// RFC 9207: the issuer the authorization server named in its response.
    iss: Option<String>,
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
    /// makes every state unique; the PKCE verifier is derived from it
    n: String,
    /// PKCE: the URL carried the challenge, so the exchange sends the
    /// verifier. Signed, so a config change in between cannot mismatch them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    k: bool,
}

pub async fn url(
    State(state): State<AppState>,
    Caller(client): Caller,
    Query(q): Query<UrlQuery>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    check_id(&q.credential_id)?;
    check_provider(&state, &q.provider, None)?;
    check_redirect_uri(&state, &q.provider, &q.redirect_uri)?;
    may_manage(&client, &q.credential_id)?;
    let use_pkce = state
        .config()
        .providers
        .get(&q.provider)
        .is_some_and(|p| p.pkce);
    let claims = Claims {
        c: q.credential_id.clone(),
        p: q.provider.clone(),
        r: q.redirect_uri.clone(),
        e: state.now() + STATE_TTL_MS,
        n: hex::encode(rand::random::<[u8; 12]>()),
        k: use_pkce,
    };
    let signed = sign(&services.store, &claims);
    let verifier = use_pkce.then(|| pkce_verifier(&services.store, &claims.n));
    let challenge = verifier.as_ref().map(pkce::challenge);
    let url = services.refresher.authorization_url(
        &q.provider,
        &AuthorizationRequest {
            redirect_uri: &q.redirect_uri,
            scope: q.scope.as_deref(),
            state: &signed,
            avoid_linking: q.avoid_linking,
            provider_name: q.provider_name.as_deref(),
            code_challenge: challenge.as_deref(),
        },
    )?;
    Ok(axum::Json(json!({"url": url.as_str()})).into_response())
}

pub async fn callback(
    State(state): State<AppState>,
    Caller(client): Caller,
    Json(body): Json<CallbackBody>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let claims = verify(&services.store, &body.state, state.now())?;
    check_provider(&state, &claims.p, None)?;
    check_issuer(&state, &claims.p, body.iss.as_deref())?;
    may_manage(&client, &claims.c)?;
    let verifier = claims.k.then(|| pkce_verifier(&services.store, &claims.n));
    let action = Action::SignIn.or_reauthorize(&services.cache, &claims.c);
    services
        .refresher
        .exchange_code(
            &claims.c,
            &claims.p,
            &body.code,
            &claims.r,
            verifier.as_ref(),
        )
        .await?;
    audit::record(action, &claims.c, &client, &claims.p);
    view_response(&services.store, &claims.c, true).await
}

/// RFC 9207 mix-up defence. With `issuer` configured the callback must
/// carry exactly that `iss` (§2.4: a server known to send it must not be
/// trusted without it, or an attacker's server that sends none would pass).
/// Without `issuer` there is nothing to compare, and `iss` is accepted.
fn check_issuer(state: &AppState, provider: &str, iss: Option<&str>) -> Result<(), ApiError> {
    let config = state.config();
    let Some(expected) = config
        .providers
        .get(provider)
        .and_then(|p| p.issuer.as_deref())
    else {
        return Ok(());
    };
    match iss {
        Some(got) if got == expected => Ok(()),
        Some(_) => Err(ApiError::InvalidRequest(format!(
            "iss is not providers.{provider}.issuer {expected:?}: the code may come from another server (mix-up); start the authorization again"
        ))),
        None => Err(ApiError::InvalidRequest(format!(
            "iss is missing: providers.{provider}.issuer is set, so the callback must pass on the iss the provider sent with the code (or remove issuer if this provider sends none)"
        ))),
    }
}

/// The PKCE verifier of the state with nonce `nonce`: HMAC under the state
/// key, so only this tokend (or a member with its key) can compute it. The
/// label ends in a NUL byte, which no signed payload (base64url text) holds,
/// so no state signature ever seen in a browser equals a verifier.
fn pkce_verifier(store: &Store, nonce: &str) -> SecretString {
    let mut data = b"tokend pkce v1\0".to_vec();
    data.extend_from_slice(nonce.as_bytes());
    pkce::verifier_from(&store.state_mac(&data))
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
