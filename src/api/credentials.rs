//! Credential management: import, code exchange, application calendars,
//! views, listing and delete. Changes need the client's `manage` right.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::audit::{self, Action};
use super::checks::{check_provider, check_redirect_uri, may_manage, may_read};
use super::error::ApiError;
use super::{AppState, Caller, CredentialId, Json, Query};
use crate::config::ProviderKind;
use crate::model::Status;
use crate::refresh::{DeleteError, Import};
use crate::store::{ListFilter, Store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    provider: String,
    refresh_token: SecretString,
    access_token: Option<SecretString>,
    expires_in: Option<u64>,
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    provider: String,
    code: SecretString,
    redirect_uri: String,
    /// PKCE (RFC 7636): for an app that built its own authorization URL
    /// with a code challenge; sent to the provider as given.
    code_verifier: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarBody {
    provider: String,
    application_calendar_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    provider: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    revoke: Option<bool>,
}

pub async fn import(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
    Json(body): Json<ImportBody>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    check_provider(&state, &body.provider, None)?;
    if body.access_token.is_some() != body.expires_in.is_some() {
        return Err(ApiError::InvalidRequest(
            "access_token and expires_in go together: send both or neither".into(),
        ));
    }
    let max_lifetime = state.config().refresh.max_lifetime_secs;
    if body.expires_in.is_some_and(|e| e > max_lifetime) {
        return Err(ApiError::InvalidRequest(format!(
            "expires_in must be at most {max_lifetime} seconds (refresh.max_lifetime_secs)"
        )));
    }
    may_manage(&client, &id)?;
    let action = Action::Import.or_reauthorize(&services.cache, &id);
    let provider = body.provider.clone();
    let out = services
        .refresher
        .import(Import {
            id: id.clone(),
            provider: body.provider,
            refresh_token: body.refresh_token,
            access_token: body.access_token,
            expires_in: body.expires_in,
            scope: body.scope,
        })
        .await?;
    audit::record(action, &id, &client, &provider);
    view_response(&services.store, &id, out.created).await
}

pub async fn authorization_code(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
    Json(body): Json<CodeBody>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    check_provider(&state, &body.provider, None)?;
    check_redirect_uri(&state, &body.provider, &body.redirect_uri)?;
    if let Some(verifier) = &body.code_verifier {
        crate::refresh::pkce::check_verifier(verifier).map_err(ApiError::InvalidRequest)?;
    }
    may_manage(&client, &id)?;
    let action = Action::SignIn.or_reauthorize(&services.cache, &id);
    services
        .refresher
        .exchange_code(
            &id,
            &body.provider,
            &body.code,
            &body.redirect_uri,
            body.code_verifier.as_ref(),
        )
        .await?;
    audit::record(action, &id, &client, &body.provider);
    view_response(&services.store, &id, true).await
}

pub async fn application_calendar(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
    Json(body): Json<CalendarBody>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    check_provider(&state, &body.provider, Some(ProviderKind::Cronofy))?;
    let cal = &body.application_calendar_id;
    if cal.is_empty() || cal.len() > 256 || cal.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "application_calendar_id must be 1 to 256 printable characters".into(),
        ));
    }
    may_manage(&client, &id)?;
    services
        .refresher
        .application_calendar(&id, &body.provider, cal)
        .await?;
    view_response(&services.store, &id, true).await
}

pub async fn show(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    may_read(&client, &id)?;
    let view = services
        .store
        .get_credential(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(view.to_json()).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Caller(client): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::InvalidRequest("unknown status: use active or needs_reauth".into())
            })
        })
        .transpose()?;
    if let Some(p) = &q.provider {
        check_provider(&state, p, None)?;
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidRequest("limit must be 1 to 1000".into()));
    }
    if let Some(after) = &q.after {
        super::check_id(after)?;
    }
    let filter = ListFilter {
        status,
        provider: q.provider,
        after: q.after,
        limit,
    };
    let views = services
        .store
        .list_credentials(&filter, client.patterns())
        .await?;
    let next_after = (views.len() == limit as usize)
        .then(|| views.last().map(|v| v.id.clone()))
        .flatten();
    let credentials: Vec<_> = views.iter().map(|v| v.to_json()).collect();
    Ok(axum::Json(json!({"credentials": credentials, "next_after": next_after})).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(client): Caller,
    CredentialId(id): CredentialId,
    Query(q): Query<DeleteQuery>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    may_manage(&client, &id)?;
    let revoke = q.revoke.unwrap_or(false);
    let provider = services
        .cache
        .get(&id)
        .map(|entry| services.cache.provider_of(&entry));
    match services.refresher.delete(&id, revoke).await {
        Ok(()) => {
            let action = if revoke {
                Action::Revoke
            } else {
                Action::Delete
            };
            audit::record(action, &id, &client, provider.as_deref().unwrap_or("?"));
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        // Name the sharing credentials this client may read; count the rest.
        Err(DeleteError::GrantShared { others }) => {
            let (named, hidden): (Vec<_>, Vec<_>) =
                others.into_iter().partition(|o| client.may_read(o));
            Err(ApiError::GrantShared {
                named,
                hidden: hidden.len(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The credential's view: 201 when it was `created`, else 200.
pub(super) async fn view_response(
    store: &Store,
    id: &str,
    created: bool,
) -> Result<Response, ApiError> {
    let view = store.get_credential(id).await?.ok_or(ApiError::NotFound)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view.to_json())).into_response())
}
