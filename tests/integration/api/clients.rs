//! Clients (SPEC §3 `[clients]`): keys by SHA-256, glob patterns that limit
//! reads and listings, the `manage` right for every change, and the
//! generated `default` client (its `client.key`, mode 0600, full rights).

use std::os::unix::fs::PermissionsExt;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{ADMIN_KEY, READER_KEY, TEAM_KEY, as_client, assert_error, import_with_token};
use crate::helpers::{REDIRECT_URI, send, spawn_app};

#[tokio::test]
async fn patterns_limit_reads_and_listings() {
    let app = super::spawn_with_clients().await;
    for id in ["team-1", "team-2", "other"] {
        assert_eq!(
            import_with_token(&app, id, "cronofy", &format!("rt-{id}"))
                .await
                .0,
            201
        );
    }
    let get = |key: &str, path: &str| send(as_client(&app, key, Method::GET, path));
    assert_eq!(get(TEAM_KEY, "/v1/tokens/team-1").await.0, StatusCode::OK);
    assert_eq!(
        get(TEAM_KEY, "/v1/credentials/team-2").await.0,
        StatusCode::OK
    );
    for path in ["/v1/tokens/other", "/v1/credentials/other"] {
        let got = get(TEAM_KEY, path).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        assert!(!got.1.to_string().contains("at-imported"));
    }
    let refresh = send(as_client(
        &app,
        TEAM_KEY,
        Method::POST,
        "/v1/tokens/other/refresh",
    ))
    .await;
    assert_error(&refresh, StatusCode::FORBIDDEN, "forbidden");

    let list = |key: &'static str, query: &'static str| async move {
        let (status, body) = get(key, &format!("/v1/credentials{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids: Vec<String> = body["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, body["next_after"].clone())
    };
    assert_eq!(list(TEAM_KEY, "").await.0, vec!["team-1", "team-2"]);
    assert_eq!(
        list(TEAM_KEY, "?limit=1").await,
        (vec!["team-1".to_owned()], json!("team-1"))
    );
    assert_eq!(
        list(TEAM_KEY, "?limit=1&after=team-1").await.0,
        vec!["team-2"]
    );
    assert_eq!(
        list(READER_KEY, "").await.0,
        vec!["other", "team-1", "team-2"]
    );
    assert_eq!(list(ADMIN_KEY, "").await.0.len(), 3);
}

#[tokio::test]
async fn without_manage_a_client_reads_but_changes_nothing() {
    let app = super::spawn_with_clients().await;
    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-a").await.0,
        201
    );
    app.fake.add_code("code-1", "rt-new", json!({}));
    let redirect =
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>();
    let changes = [
        (
            Method::PUT,
            "/v1/credentials/alice".to_owned(),
            json!({"provider": "cronofy", "refresh_token": "rt-x"}),
        ),
        (
            Method::PUT,
            "/v1/credentials/newbie".to_owned(),
            json!({"provider": "cronofy", "refresh_token": "rt-x"}),
        ),
        (
            Method::POST,
            "/v1/credentials/alice/authorization-code".to_owned(),
            json!({"provider": "cronofy", "code": "code-1", "redirect_uri": REDIRECT_URI}),
        ),
        (
            Method::POST,
            "/v1/credentials/alice/application-calendar".to_owned(),
            json!({"provider": "cronofy", "application_calendar_id": "cal"}),
        ),
        (
            Method::POST,
            "/v1/callback".to_owned(),
            json!({"code": "code-1", "state": "x.y"}),
        ),
        (
            Method::DELETE,
            "/v1/credentials/alice".to_owned(),
            json!(null),
        ),
        (
            Method::DELETE,
            "/v1/credentials/alice?revoke=true".to_owned(),
            json!(null),
        ),
        (
            Method::GET,
            format!(
                "/v1/authorize-url?provider=cronofy&credential_id=alice&scope=s&redirect_uri={redirect}"
            ),
            json!(null),
        ),
    ];
    for (method, path, body) in changes {
        let mut request = as_client(&app, READER_KEY, method.clone(), &path);
        if !body.is_null() {
            request = request.json(&body);
        }
        let got = send(request).await;
        // The callback's state is checked first: a bad one is 400 for anyone.
        let expected = if path == "/v1/callback" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(got.0, expected, "{method} {path}: {}", got.1);
    }
    assert!(
        app.fake.requests().is_empty(),
        "nothing reached the provider"
    );
    // Reads still work, the forced refresh included (it changes no credential).
    let (status, token) = send(as_client(&app, READER_KEY, Method::GET, "/v1/tokens/alice")).await;
    assert_eq!(
        (status, &token["access_token"]),
        (StatusCode::OK, &json!("at-imported-alice"))
    );
    let (status, _) = send(as_client(
        &app,
        READER_KEY,
        Method::POST,
        "/v1/tokens/alice/refresh",
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        send(app.get("/v1/credentials/newbie")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_manager_is_bound_by_its_patterns_too() {
    let app = super::spawn_with_clients().await;
    let import = |id: &'static str| {
        send(as_client(&app, TEAM_KEY, Method::PUT, &format!("/v1/credentials/{id}")).json(&json!({
            "provider": "cronofy", "refresh_token": "rt-t", "access_token": "at-t", "expires_in": 60,
        })))
    };
    assert_eq!(import("team-9").await.0, StatusCode::CREATED);
    assert_error(&import("other").await, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        send(app.get("/v1/credentials/other")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_generated_default_client() {
    let app = spawn_app().await;
    let path = app.dir.path().join("client.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "client.key is 0600");
    let key = std::fs::read_to_string(&path).unwrap();
    let key = key.trim();
    assert!(
        key.starts_with("tkd_") && key.len() > 40,
        "a long random key"
    );
    // It has full rights: create, read, delete.
    let (status, _) = import_with_token(&app, "alice", "cronofy", "rt-a").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(as_client(&app, key, Method::GET, "/v1/tokens/alice")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(as_client(
        &app,
        key,
        Method::DELETE,
        "/v1/credentials/alice",
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let almost = format!("{}x", &key[..key.len() - 1]);
    let got = send(as_client(&app, &almost, Method::GET, "/v1/credentials")).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");

    // With clients configured, no default client (and no key file) is made.
    let configured = super::spawn_with_clients().await;
    assert!(!configured.dir.path().join("client.key").exists());
}

#[tokio::test]
async fn grant_shared_names_only_the_sharers_the_client_may_read() {
    let app = super::spawn_with_clients().await;
    app.fake.add_refresh_token("rt-shared", json!({}));
    for id in ["team-1", "team-2", "other"] {
        let body = json!({"provider": "cronofy", "refresh_token": "rt-shared"});
        let (status, _) = send(
            as_client(
                &app,
                ADMIN_KEY,
                Method::PUT,
                &format!("/v1/credentials/{id}"),
            )
            .json(&body),
        )
        .await;
        assert!(status.is_success(), "import {id}: {status}");
    }
    let got = send(as_client(
        &app,
        TEAM_KEY,
        Method::DELETE,
        "/v1/credentials/team-1?revoke=true",
    ))
    .await;
    assert_error(&got, StatusCode::CONFLICT, "grant_shared");
    let message = got.1["message"].as_str().unwrap();
    assert!(message.contains("\"team-2\""), "{message}");
    assert!(
        message.contains("1 more credential this client may not read"),
        "{message}"
    );
    assert!(!message.contains("\"other\""), "{message}");
    assert!(app.fake.revoked().is_empty());
}
