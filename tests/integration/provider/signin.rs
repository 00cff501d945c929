//! The sign-in flow end to end against servers that behave like
//! django-oauth-toolkit (PKCE required) and oidc-provider (RFC 9207 `iss`):
//! `GET /v1/authorize-url`, the fake's authorization endpoint in place of the
//! browser, then `POST /v1/callback` or the app's own code exchange.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::fake_provider::FakeProvider;
use crate::helpers::{AppOptions, REDIRECT_URI, TestApp, send, spawn_app, spawn_app_with};
use crate::process::{Daemon, write_config};

fn authorize_path(provider: &str, id: &str) -> String {
    format!(
        "/v1/authorize-url?provider={provider}&credential_id={id}&scope=read_write&redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
    )
}

/// The authorization URL tokend builds, and its query parameters.
async fn authorize_url(
    app: &TestApp,
    provider: &str,
    id: &str,
) -> (String, HashMap<String, String>) {
    let (status, body) = send(app.get(&authorize_path(provider, id))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["url"].as_str().unwrap().to_owned();
    let params = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    (url, params)
}

/// The `code_verifier` of the fake's last code exchange.
fn sent_verifier(fake: &FakeProvider) -> Option<String> {
    fake.requests()
        .iter()
        .rev()
        .find(|r| r.field("grant_type").as_deref() == Some("authorization_code"))
        .and_then(|r| r.field("code_verifier"))
}

fn s256(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

fn assert_invalid_request(got: &(StatusCode, Value), says: &str) {
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
    assert_eq!(got.1["error"], "invalid_request", "{}", got.1);
    let message = got.1["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
}

#[tokio::test]
async fn sign_in_works_where_pkce_is_required() {
    let app = spawn_app().await;
    app.fake.require_pkce(true);
    app.fake
        .set_authorize_extras(json!({"account_id": "acc_p"}));
    for (provider, id) in [("cronofy", "cron-user"), ("google", "google-user")] {
        let (url, params) = authorize_url(&app, provider, id).await;
        assert_eq!(params["code_challenge_method"], "S256", "{url}");
        let challenge = &params["code_challenge"];
        assert_eq!(challenge.len(), 43, "{url}");
        let back = app.fake.authorize(&url).await;
        assert_eq!(back.param("error"), None, "{}", back.location);
        let (status, view) = send(app.post("/v1/callback").json(&back.callback_body())).await;
        assert_eq!(status, StatusCode::CREATED, "{provider}: {view}");
        assert_eq!(view["account_id"], "acc_p");

        // The verifier matches the challenge, and never went through the browser.
        let verifier = sent_verifier(&app.fake).expect("a code_verifier was sent");
        assert_eq!(&s256(&verifier), challenge);
        assert!((43..=128).contains(&verifier.len()));
        assert!(!url.contains(&verifier), "{url}");
        let state = &params["state"];
        let payload = state.split_once('.').unwrap().0;
        let claims = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        assert!(!claims.contains(&verifier), "{claims}");
        assert_eq!(app.token(id).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn pkce_false_leaves_pkce_out() {
    let app = spawn_app_with(AppOptions {
        env: vec![("TOKEND__PROVIDERS__GOOGLE__PKCE".into(), "false".into())],
        ..AppOptions::default()
    })
    .await;
    let (url, params) = authorize_url(&app, "google", "bob").await;
    assert!(!params.contains_key("code_challenge"), "{url}");
    assert!(!params.contains_key("code_challenge_method"), "{url}");
    let back = app.fake.authorize(&url).await;
    let (status, view) = send(app.post("/v1/callback").json(&back.callback_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(
        sent_verifier(&app.fake),
        None,
        "no verifier without a challenge"
    );
    // Cronofy keeps its default.
    let (_, params) = authorize_url(&app, "cronofy", "carol").await;
    assert!(params.contains_key("code_challenge"));
}

#[tokio::test]
async fn a_state_from_before_a_restart_still_completes_pkce() {
    let app = spawn_app().await;
    app.fake.require_pkce(true);
    let (url, _) = authorize_url(&app, "google", "bob").await;
    let back = app.fake.authorize(&url).await;
    let (fake, dir) = app.shutdown().await;
    let app = spawn_app_with(AppOptions {
        fake: Some(fake),
        dir: Some(dir),
        ..AppOptions::default()
    })
    .await;
    let (status, view) = send(app.post("/v1/callback").json(&back.callback_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
}

#[tokio::test]
async fn the_direct_exchange_passes_on_the_apps_code_verifier() {
    let app = spawn_app().await;
    app.fake.require_pkce(true);
    // The app builds its own authorization URL, with its own PKCE pair.
    let verifier = "app-chosen-verifier-0123456789-abcdefghijklmnop~._";
    let own_url = format!(
        "{}/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&state=app-state&code_challenge={}&code_challenge_method=S256",
        app.fake.url,
        crate::fake_provider::CLIENT_ID,
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
        s256(verifier),
    );
    let code = app
        .fake
        .authorize(&own_url)
        .await
        .param("code")
        .unwrap()
        .to_owned();
    let exchange = |body: Value| {
        send(
            app.post("/v1/credentials/bob/authorization-code")
                .json(&body),
        )
    };
    let body = |extra: Value| {
        let mut b = json!({"provider": "google", "code": code, "redirect_uri": REDIRECT_URI});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };

    // Refused locally, before any call: a malformed verifier, a misspelt field.
    app.fake.clear_requests();
    let short = exchange(body(json!({"code_verifier": "too-short"}))).await;
    assert_invalid_request(&short, "43 to 128");
    assert!(!short.1.to_string().contains("too-short"), "{}", short.1);
    let typo = exchange(body(json!({"code_verifer": verifier}))).await;
    assert_invalid_request(&typo, "code_verifer");
    assert!(app.fake.requests().is_empty(), "no call for bad input");

    // Without the verifier the server refuses; with it the exchange works.
    let (status, err) = exchange(body(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Code verifier required"),
        "{err}"
    );
    let (status, view) = exchange(body(json!({"code_verifier": verifier}))).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(sent_verifier(&app.fake).as_deref(), Some(verifier));
}

#[tokio::test]
async fn a_callback_may_carry_iss() {
    let app = spawn_app().await;
    app.fake.send_iss(Some("https://id.example"));
    let (url, _) = authorize_url(&app, "google", "bob").await;
    let back = app.fake.authorize(&url).await;
    assert_eq!(back.callback_body()["iss"], "https://id.example");
    // No issuer configured: nothing to compare it with; it is accepted.
    let (status, view) = send(app.post("/v1/callback").json(&back.callback_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
}

#[tokio::test]
async fn a_configured_issuer_must_match_the_callbacks_iss() {
    let fake = FakeProvider::start().await;
    let issuer = format!("{}/op", fake.url);
    let app = spawn_app_with(AppOptions {
        env: vec![("TOKEND__PROVIDERS__GOOGLE__ISSUER".into(), issuer.clone())],
        fake: Some(fake),
        ..AppOptions::default()
    })
    .await;
    let callback = |body: Value| send(app.post("/v1/callback").json(&body));

    // Another server's iss (a mix-up): refused before any call, code unspent.
    app.fake.send_iss(Some("https://attacker.example"));
    let (url, _) = authorize_url(&app, "google", "bob").await;
    let back = app.fake.authorize(&url).await;
    app.fake.clear_requests();
    let got = callback(back.callback_body()).await;
    assert_invalid_request(&got, "providers.google.issuer");
    // The caller's value is never echoed (it may be anything a browser sent).
    assert!(!got.1.to_string().contains("attacker.example"), "{}", got.1);
    // No iss although the server is known to send one: refused too (RFC 9207 §2.4).
    let mut without = back.callback_body();
    without.as_object_mut().unwrap().remove("iss");
    assert_invalid_request(&callback(without).await, "iss is missing");
    assert!(app.fake.requests().is_empty(), "no exchange was tried");
    assert_eq!(app.token("bob").await.0, StatusCode::NOT_FOUND);

    // The right issuer: accepted.
    let mut right = back.callback_body();
    right["iss"] = json!(issuer);
    let (status, view) = callback(right).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    // Cronofy has no issuer configured: its callbacks need no iss.
    app.fake.send_iss(None);
    let (url, _) = authorize_url(&app, "cronofy", "carol").await;
    let back = app.fake.authorize(&url).await;
    assert_eq!(callback(back.callback_body()).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verifier_reaches_no_log_line() {
    let fake = FakeProvider::start().await;
    fake.require_pkce(true);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    let daemon = Daemon::start(&config, &[("TOKEND__LOG__LEVEL", "debug,tokend=trace")]);
    daemon.wait_ready().await;
    let (status, body) =
        send(daemon.request(reqwest::Method::GET, &authorize_path("google", "bob"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let back = fake.authorize(body["url"].as_str().unwrap()).await;
    let (status, view) = send(
        daemon
            .request(reqwest::Method::POST, "/v1/callback")
            .json(&back.callback_body()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let verifier = sent_verifier(&fake).unwrap();
    let (_, logs) = daemon.stop().await;
    assert!(
        logs.contains("provider call"),
        "debug lines were on:\n{logs}"
    );
    assert!(!logs.contains(&verifier), "{logs}");
    assert!(!logs.contains(back.param("code").unwrap()), "{logs}");
}
