//! The sign-in flow: `GET /v1/authorize-url` (the provider's URL on
//! Cronofy's app host of its data centre, with the parameters and a signed
//! `state`) and `POST /v1/callback` (a valid state creates the credential; a
//! tampered, foreign or expired one is 400 with no provider call).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::json;
use url::Url;

use super::assert_error;
use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, FakeProvider};
use crate::helpers::{AppOptions, REDIRECT_URI, TestApp, send, spawn_app, spawn_app_with};

/// Asks for an authorization URL; returns it and its query parameters.
async fn authorize_url(app: &TestApp, provider: &str, id: &str) -> (Url, HashMap<String, String>) {
    let path = format!(
        "/v1/authorize-url?provider={provider}&credential_id={id}&scope=read_write&redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
    );
    let (status, body) = send(app.get(&path)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "just {{\"url\"}}: {body}"
    );
    let url = Url::parse(body["url"].as_str().unwrap()).unwrap();
    let params = url.query_pairs().into_owned().collect();
    (url, params)
}

#[tokio::test]
async fn the_url_is_cronofys_app_host_with_a_signed_state() {
    let fake = FakeProvider::start().await;
    let extra_toml = format!(
        "[providers.cronofy_de]\nkind = \"cronofy\"\ndata_center = \"de\"\napi_base_url = \"{}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nredirect_uris = [\"{REDIRECT_URI}\"]\n",
        fake.url
    );
    let app = spawn_app_with(AppOptions {
        extra_toml,
        fake: Some(fake),
        ..AppOptions::default()
    })
    .await;
    let (url, params) = authorize_url(&app, "cronofy_de", "bob").await;
    assert_eq!(url.scheme(), "https");
    assert_eq!(
        url.host_str(),
        Some("app-de.cronofy.com"),
        "the app host, not api: {url}"
    );
    assert_eq!(url.path(), "/oauth/authorize");
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["redirect_uri"], REDIRECT_URI);
    assert_eq!(params["scope"], "read_write");
    assert!(!url.as_str().contains(CLIENT_SECRET));
    // The state binds the credential id, and is signed.
    let state = &params["state"];
    let (payload, mac) = state.split_once('.').expect("payload.mac");
    assert!(!mac.is_empty());
    let claims: serde_json::Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["c"], "bob");
    // Every URL gets its own state.
    let (_, again) = authorize_url(&app, "cronofy_de", "bob").await;
    assert_ne!(&again["state"], state);
    assert!(
        app.fake.requests().is_empty(),
        "building a URL calls nobody"
    );
}

#[tokio::test]
async fn a_valid_state_exchanges_the_code_into_its_credential() {
    let app = spawn_app().await;
    let (url, params) = authorize_url(&app, "cronofy", "bob").await;
    assert!(
        url.as_str()
            .starts_with(&format!("{}/oauth/authorize?", app.fake.url))
    );
    app.fake.add_code(
        "code-1",
        "rt-bob",
        json!({"account_id": "acc_b", "sub": "sub_b"}),
    );
    let (status, view) = send(app.post("/v1/callback").json(&json!({
        "code": "code-1", "state": params["state"],
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["id"], "bob");
    assert_eq!(view["provider"], "cronofy");
    assert_eq!(view["account_id"], "acc_b");
    let call = &app.fake.requests()[0];
    assert_eq!(
        call.field("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(call.field("redirect_uri").as_deref(), Some(REDIRECT_URI));
    let (status, token) = app.token("bob").await;
    assert_eq!((status, &token["sub"]), (StatusCode::OK, &json!("sub_b")));
}

#[tokio::test]
async fn tampered_foreign_and_expired_states_are_refused() {
    let app = spawn_app().await;
    let (_, params) = authorize_url(&app, "cronofy", "bob").await;
    let state = params["state"].clone();
    let (payload, mac) = state.split_once('.').unwrap();
    // Point the state at another credential, keeping the signature.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["c"] = json!("mallory");
    let forged = format!("{}.{mac}", B64.encode(claims.to_string()));
    let mut flipped = state.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    app.fake.add_code("code-1", "rt-bob", json!({}));
    for bad in [
        forged.as_str(),
        flipped.as_str(),
        payload,
        "",
        "x.y",
        "....",
    ] {
        let got = send(
            app.post("/v1/callback")
                .json(&json!({"code": "code-1", "state": bad})),
        )
        .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // A state from another tokend (another signing key) is foreign too.
    let other = spawn_app().await;
    let (_, theirs) = authorize_url(&other, "cronofy", "bob").await;
    let got = send(
        app.post("/v1/callback")
            .json(&json!({"code": "code-1", "state": theirs["state"]})),
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");

    // Ten minutes later the genuine state has expired.
    app.clock.advance(Duration::from_secs(601));
    let got = send(
        app.post("/v1/callback")
            .json(&json!({"code": "code-1", "state": state})),
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        got.1["message"].as_str().unwrap().contains("expired"),
        "{}",
        got.1
    );
    assert!(app.fake.requests().is_empty(), "no exchange was attempted");
    assert_eq!(app.token("bob").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.token("mallory").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn authorize_url_checks_its_parameters() {
    let app = spawn_app().await;
    let redirect =
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>();
    for query in [
        "provider=cronofy&credential_id=bob".to_owned(),
        format!("provider=nope&credential_id=bob&scope=s&redirect_uri={redirect}"),
        format!("provider=cronofy&credential_id=bad!id&scope=s&redirect_uri={redirect}"),
        format!("provider=cronofy&credential_id=bob&redirect_uri={redirect}"),
        format!("provider=cronofy&credential_id=bob&scope=s&redirect_uri={redirect}&colour=red"),
    ] {
        let got = send(app.get(&format!("/v1/authorize-url?{query}"))).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let missing = send(app.post("/v1/callback").json(&json!({"code": "c"}))).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_request");
}
