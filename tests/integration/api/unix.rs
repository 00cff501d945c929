//! The unix socket (`server.unix_socket`): its file mode is
//! `unix_socket_mode`, a client listed by `unix_uids` is recognised by the
//! peer's uid (SO_PEERCRED) with no key, an unlisted uid without a key is
//! 401, the browser defences still apply, and the file goes at shutdown.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{ADMIN_KEY, client_toml, import_with_token};
use crate::helpers::{AppOptions, TestApp, spawn_app_with};

/// This process's uid, as the daemon will see it through SO_PEERCRED.
fn my_uid() -> u32 {
    let (a, _b) = tokio::net::UnixStream::pair().unwrap();
    a.peer_cred().unwrap().uid()
}

/// An app with a socket in its temp dir, an `admin` client with a key, and
/// a `local` client for peer uid `uid`.
async fn spawn_with_socket(uid: u32) -> (TestApp, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    let server_toml = format!(
        "unix_socket = \"{}\"\nunix_socket_mode = \"0640\"",
        socket.display()
    );
    let extra_toml = format!(
        "{}[clients.local]\nunix_uids = [{uid}]\ncredentials = [\"*\"]\nmanage = true\n",
        client_toml("admin", ADMIN_KEY, &["*"], true)
    );
    let mut app = spawn_app_with(AppOptions {
        server_toml,
        extra_toml,
        dir: Some(dir.into()),
        ..AppOptions::default()
    })
    .await;
    app.key = ADMIN_KEY.to_owned();
    (app, socket)
}

/// One HTTP/1.1 request over the socket; `headers` are added as given.
async fn over_socket(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut request = hyper::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let body = body.map_or(String::new(), |b| b.to_string());
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = sender
        .send_request(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

#[tokio::test]
async fn a_listed_peer_uid_needs_no_key() {
    let (app, socket) = spawn_with_socket(my_uid()).await;
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "unix_socket_mode");
    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-a").await.0,
        201
    );

    let (status, token) = over_socket(&socket, "GET", "/v1/tokens/alice", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["access_token"], "at-imported-alice");
    // The uid's client has its rights: it may manage.
    let body = json!({"provider": "cronofy", "refresh_token": "rt-b", "access_token": "at-b", "expires_in": 60});
    let (status, view) = over_socket(&socket, "PUT", "/v1/credentials/bob", &[], Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    // A browser cannot reach a socket, so Host is not checked here...
    let (status, _) = over_socket(
        &socket,
        "GET",
        "/v1/tokens/bob",
        &[("host", "evil.example")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // ...but the browser and proxy headers still are.
    for header in [
        ("origin", "null"),
        ("sec-fetch-mode", "cors"),
        ("via", "1.1 p"),
    ] {
        let (status, body) = over_socket(&socket, "GET", "/v1/tokens/bob", &[header], None).await;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::FORBIDDEN, &json!("forbidden"))
        );
    }
    // A key, when sent, must be a known one.
    let wrong = [("authorization", "Bearer tkd_wrong")];
    let (status, body) = over_socket(&socket, "GET", "/v1/tokens/alice", &wrong, None).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );

    app.shutdown().await;
    assert!(!socket.exists(), "the socket file goes at shutdown");
}

#[tokio::test]
async fn an_unlisted_peer_uid_needs_a_key() {
    let (app, socket) = spawn_with_socket(my_uid().wrapping_add(1)).await;
    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-a").await.0,
        201
    );
    let (status, body) = over_socket(&socket, "GET", "/v1/tokens/alice", &[], None).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    let key = format!("Bearer {ADMIN_KEY}");
    let auth = [("authorization", key.as_str())];
    let (status, token) = over_socket(&socket, "GET", "/v1/tokens/alice", &auth, None).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    // Health probes need nothing.
    let (status, _) = over_socket(&socket, "GET", "/healthz", &[], None).await;
    assert_eq!(status, StatusCode::OK);
}
