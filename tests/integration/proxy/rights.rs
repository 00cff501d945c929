//! Rights on the proxy: the client's credential patterns; a client with
//! `read_tokens = false` is refused the token endpoints but may proxy; the
//! key check and the browser defences apply as on every route.

use reqwest::{Method, StatusCode};

use super::{assert_own, assert_passed_back, bearers, call};
use crate::api::{ADMIN_KEY, anonymous, as_client, client_toml, sha256_hex};
use crate::helpers::{AppOptions, spawn_app_with};

const ROBOT_KEY: &str = "tkd_robot-key-for-tests";
const TEAM_KEY: &str = "tkd_team-key-for-tests";

async fn app() -> crate::helpers::TestApp {
    let extra_toml = [
        client_toml("admin", ADMIN_KEY, &["*"], true),
        client_toml("team", TEAM_KEY, &["team-*"], false),
        format!(
            "[clients.robot]\nkey_sha256 = \"{}\"\ncredentials = [\"alice\"]\nread_tokens = false\n",
            sha256_hex(ROBOT_KEY)
        ),
    ]
    .concat();
    let mut app = spawn_app_with(AppOptions {
        extra_toml,
        ..AppOptions::default()
    })
    .await;
    app.key = ADMIN_KEY.to_owned();
    assert_eq!(app.import("alice", "rt-alice").await.0, StatusCode::CREATED);
    app
}

#[tokio::test]
async fn a_client_without_read_tokens_may_proxy_but_gets_no_token() {
    let app = app().await;
    let got = call(as_client(&app, ROBOT_KEY, Method::GET, "/v1/tokens/alice")).await;
    crate::api::assert_error(&(got.0, got.2.clone()), StatusCode::FORBIDDEN, "forbidden");
    assert!(!got.2.to_string().contains("at-1"));
    let got = call(as_client(
        &app,
        ROBOT_KEY,
        Method::POST,
        "/v1/tokens/alice/refresh",
    ))
    .await;
    crate::api::assert_error(&(got.0, got.2.clone()), StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        app.fake.refresh_calls(),
        1,
        "the refused refresh made no call"
    );

    let (status, headers, echo) = call(as_client(
        &app,
        ROBOT_KEY,
        Method::GET,
        "/v1/proxy/alice/api/echo/x",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_passed_back(&headers);
    assert_eq!(bearers(&app), ["Bearer at-1"]);
}

#[tokio::test]
async fn the_clients_patterns_decide_which_credentials_it_may_proxy() {
    let app = app().await;
    let got = call(as_client(
        &app,
        TEAM_KEY,
        Method::GET,
        "/v1/proxy/alice/api/echo/x",
    ))
    .await;
    assert_own(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = call(as_client(
        &app,
        ROBOT_KEY,
        Method::GET,
        "/v1/proxy/bob/api/echo/x",
    ))
    .await;
    assert_own(&got, StatusCode::FORBIDDEN, "forbidden");
    assert!(app.fake.api_requests().is_empty());
}

#[tokio::test]
async fn no_key_and_browsers_are_refused_as_everywhere() {
    let app = app().await;
    let got = call(anonymous(&app, Method::GET, "/v1/proxy/alice/api/echo/x")).await;
    assert_own(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    let got = call(
        as_client(&app, ADMIN_KEY, Method::GET, "/v1/proxy/alice/api/echo/x")
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_own(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = call(
        as_client(&app, ADMIN_KEY, Method::GET, "/v1/proxy/alice/api/echo/x")
            .header("host", "evil.example"),
    )
    .await;
    assert_own(&got, StatusCode::FORBIDDEN, "forbidden");
    assert!(app.fake.api_requests().is_empty());
}
