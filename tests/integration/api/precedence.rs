//! When several errors apply, the first in SPEC §4's order wins: 403 for
//! browser/proxy/Host, 401, 413, 400, 403 for rights, 404.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{READER_KEY, TEAM_KEY, anonymous, as_client, assert_error, raw, raw_body};
use crate::helpers::send;

fn big_import() -> serde_json::Value {
    json!({"provider": "cronofy", "refresh_token": "x".repeat(70_000)})
}

#[tokio::test]
async fn browser_beats_everything() {
    let app = super::spawn_with_clients().await;
    // No key, a huge body, a bad id, and an Origin: 403.
    let got = send(
        anonymous(&app, Method::PUT, "/v1/credentials/bad!id")
            .header("origin", "https://evil.example")
            .json(&big_import()),
    )
    .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = send(anonymous(&app, Method::GET, "/v1/tokens/x").header("via", "1.1 p")).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn unauthorized_beats_size_bad_input_and_not_found() {
    let app = super::spawn_with_clients().await;
    let oversize =
        send(anonymous(&app, Method::PUT, "/v1/credentials/x").json(&big_import())).await;
    assert_error(&oversize, StatusCode::UNAUTHORIZED, "unauthorized");
    let bad_id = send(anonymous(&app, Method::GET, "/v1/tokens/bad!id")).await;
    assert_error(&bad_id, StatusCode::UNAUTHORIZED, "unauthorized");
    let malformed = send(
        as_client(&app, "tkd_unknown", Method::PUT, "/v1/credentials/x")
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_error(&malformed, StatusCode::UNAUTHORIZED, "unauthorized");
    let missing = send(anonymous(&app, Method::GET, "/v1/credentials/ghost")).await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn too_large_beats_bad_input_and_rights() {
    let app = super::spawn_with_clients().await;
    let bad_id = send(app.put("/v1/credentials/bad!id").json(&big_import())).await;
    assert_error(&bad_id, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let no_rights =
        send(as_client(&app, READER_KEY, Method::PUT, "/v1/credentials/x").json(&big_import()))
            .await;
    assert_error(
        &no_rights,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // Chunked, so the size is only known while reading.
    let mut body = format!("{:x}\r\n", 70_000).into_bytes();
    body.extend(std::iter::repeat_n(b' ', 70_000));
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = format!(
        "PUT /v1/credentials/bad!id HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
        app.key
    );
    let (status, text) = raw(&app, &head, &body).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(raw_body(&text)["error"], "payload_too_large");
}

#[tokio::test]
async fn bad_input_beats_missing_rights() {
    let app = super::spawn_with_clients().await;
    let body = json!({"provider": "cronofy", "refresh_token": "rt"});
    // reader may not manage; team may not touch "other".
    for (key, id) in [(READER_KEY, "bad!id"), (TEAM_KEY, "bad!id")] {
        let got =
            send(as_client(&app, key, Method::PUT, &format!("/v1/credentials/{id}")).json(&body))
                .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
        let got = send(as_client(
            &app,
            key,
            Method::GET,
            &format!("/v1/tokens/{id}"),
        ))
        .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let cases = [
        json!({"provider": "nope", "refresh_token": "rt"}),
        json!({"provider": "cronofy"}),
        json!({"provider": "cronofy", "refresh_token": "rt", "extra": 1}),
    ];
    for body in cases {
        for (key, id) in [(READER_KEY, "team-1"), (TEAM_KEY, "other")] {
            let got = send(
                as_client(&app, key, Method::PUT, &format!("/v1/credentials/{id}")).json(&body),
            )
            .await;
            assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    let got = send(as_client(
        &app,
        TEAM_KEY,
        Method::GET,
        "/v1/tokens/other?min_ttl=x",
    ))
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn missing_rights_beat_not_found() {
    let app = super::spawn_with_clients().await;
    for (method, path) in [
        (Method::GET, "/v1/tokens/ghost"),
        (Method::POST, "/v1/tokens/ghost/refresh"),
        (Method::GET, "/v1/credentials/ghost"),
        (Method::DELETE, "/v1/credentials/ghost"),
    ] {
        let got = send(as_client(&app, TEAM_KEY, method.clone(), path)).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        // With the rights, the same request is a plain 404.
        let got = send(app.request(method, path)).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    }
    let got = send(as_client(
        &app,
        READER_KEY,
        Method::DELETE,
        "/v1/credentials/ghost",
    ))
    .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
}
