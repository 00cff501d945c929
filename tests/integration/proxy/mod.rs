//! The API proxy (`/v1/proxy/{id}/{path}`) against the fake provider's API
//! (`fake_provider/api.rs`), which checks the bearer token and echoes what
//! it received: forwarding and header rules, paths that could leave the
//! base, the 401/403/429 rules, redirects, time-outs, rights.

mod failures;
mod forward;
mod observe;
mod paths;
mod retries;
mod rights;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::api::send_full;
use crate::helpers::{AppOptions, TestApp, spawn_app_with};

/// An app whose credential `alice` (Cronofy, API base = the fake) holds
/// `at-1`.
pub async fn app_with_alice(options: AppOptions) -> TestApp {
    let app = spawn_app_with(options).await;
    assert_eq!(app.import("alice", "rt-alice").await.0, StatusCode::CREATED);
    app
}

/// A proxied request as the app's own (full-rights) client.
pub fn proxy(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.request(method, &format!("/v1/proxy/{path}"))
}

/// Sends it: status, headers, JSON body (or the text as a string).
pub async fn call(request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    send_full(request).await
}

/// tokend's own answer on the proxy route: the SPEC's error body with this
/// status and code, marked `X-Tokend-Error: 1`.
#[track_caller]
pub fn assert_own(got: &(StatusCode, HeaderMap, Value), status: StatusCode, code: &str) {
    let (s, headers, body) = got;
    crate::api::assert_error(&(*s, body.clone()), status, code);
    assert_eq!(
        headers.get("x-tokend-error").map(|v| v.to_str().unwrap()),
        Some("1"),
        "tokend's own answer is marked: {headers:?}"
    );
    assert_eq!(headers["cache-control"], "no-store");
}

/// An answer the API gave, passed back: never marked as tokend's.
#[track_caller]
pub fn assert_passed_back(headers: &HeaderMap) {
    assert!(
        headers.get("x-tokend-error").is_none(),
        "the API's answer is not marked as tokend's: {headers:?}"
    );
}

/// The bearer tokens the API received, in order.
pub fn bearers(app: &TestApp) -> Vec<String> {
    app.fake
        .api_requests()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .collect()
}
