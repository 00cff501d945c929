//! Extractors that answer in the SPEC's error format: the caller, a
//! validated credential id, JSON bodies and query strings that refuse
//! unknown fields (400), and bodies over `server.max_body_bytes` (413).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::auth;
use super::error::ApiError;
use crate::model::valid_credential_id;
use crate::redact;

/// The authenticated client of a request (inserted by `gate`).
#[derive(Debug)]
pub struct Caller(pub Arc<auth::Client>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<auth::Client>>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthorized)
    }
}

/// A credential id from the path, validated (400 otherwise).
#[derive(Debug)]
pub struct CredentialId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CredentialId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::InvalidRequest("malformed path".into()))?;
        check_id(&id)?;
        Ok(CredentialId(id))
    }
}

pub fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_credential_id(id) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(
            "invalid credential id: use 1 to 128 of A-Z a-z 0-9 . _ : @ -".into(),
        ))
    }
}

/// A JSON body of type `T`: 413 past `server.max_body_bytes`, 400 for
/// malformed JSON, a missing field or an unknown one. An empty body is
/// `T::default()` where `T` allows it (see [`OptionalJson`]).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Like [`Json`], but an empty body means `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidRequest("could not read the request body".into())
            }
        })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|value| json.end().map(|()| value).map_err(|e| (String::new(), e)));
    parsed.map_err(|(path, e)| {
        // The field and what it takes, never the value sent: it may be a
        // token in the wrong place (and answers end up in callers' logs).
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        let field = redact::field_path(&path).map_or(String::new(), |p| format!("{p}: "));
        ApiError::InvalidRequest(format!(
            "invalid JSON body: {field}{}{position}",
            redact::serde_message(message)
        ))
    })
}

/// Query parameters of type `T` (unknown ones refused: 400).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| {
                let text = e.body_text();
                // axum's "Failed to deserialize query string: FIELD: MESSAGE".
                let text = text.split_once(": ").map_or(text.as_str(), |(_, t)| t);
                let (field, message) = text.split_once(": ").unwrap_or(("", text));
                let field = redact::field_path(field).map_or(String::new(), |f| format!("{f}: "));
                ApiError::InvalidRequest(format!(
                    "invalid query: {field}{}",
                    redact::serde_message(message)
                ))
            })
    }
}
