//! The hand-out fast path (`api::fast`) answers exactly as the router does:
//! same body, same headers, same errors in the same order.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

const HEADERS: &[&str] = &["content-type", "cache-control", "x-content-type-options"];

async fn parts(response: reqwest::Response) -> (StatusCode, Vec<String>, Value) {
    let status = response.status();
    let headers = HEADERS
        .iter()
        .map(|h| format!("{h}: {:?}", response.headers().get(*h)))
        .collect();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn fast_path_and_router_answer_alike() {
    let app = spawn_app().await;
    let (status, _) = app.import("alice", "rt-alice").await;
    assert_eq!(status, StatusCode::CREATED);

    // No query: the fast path. `?min_ttl=0`: the same request through the router.
    let fast = parts(app.get("/v1/tokens/alice").send().await.unwrap()).await;
    let routed = parts(app.get("/v1/tokens/alice?min_ttl=0").send().await.unwrap()).await;
    assert_eq!(fast.0, StatusCode::OK, "{}", fast.2);
    assert_eq!(
        fast, routed,
        "the clock is manual: even expires_in is equal"
    );
    assert!(fast.1[1].contains("no-store") && fast.1[2].contains("nosniff"));

    // Whatever the fast path does not answer, the router does, as before.
    let cases = [
        (app.get("/v1/tokens/nobody"), StatusCode::NOT_FOUND),
        (app.get("/v1/tokens/bad%20id"), StatusCode::BAD_REQUEST),
        (
            app.get("/v1/tokens/alice")
                .header("origin", "https://evil.example"),
            StatusCode::FORBIDDEN,
        ),
        (
            reqwest::Client::new()
                .get(format!("{}/v1/tokens/alice", app.url))
                .bearer_auth("not-a-key"),
            StatusCode::UNAUTHORIZED,
        ),
        (app.post("/v1/tokens/alice"), StatusCode::METHOD_NOT_ALLOWED),
        // A body on a GET goes through the router, which enforces the limit.
        (
            app.get("/v1/tokens/alice").body(vec![b'x'; 70_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, expected) in cases {
        let (status, headers, body) = parts(request.send().await.unwrap()).await;
        assert_eq!(status, expected, "{body}");
        assert!(headers[1].contains("no-store"), "{headers:?}");
    }
    let anonymous = reqwest::Client::new()
        .get(format!("{}/v1/tokens/alice", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.shutdown().await;
}

/// `GET /v1/tokens/{id}` on one keep-alive connection held by hyper's client.
async fn one_connection(
    addr: &str,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<axum::body::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn hand_out(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<axum::body::Bytes>>,
    key: &str,
) -> u16 {
    use http_body_util::BodyExt;
    let request = hyper::Request::get("/v1/tokens/alice")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {key}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// A connection remembers the key that identified its client (the fast
/// path hashes it once, not per request), and a SIGHUP that takes the key
/// away takes it from connections already open too.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_remembers_its_key_only_until_the_clients_change() {
    use crate::fake_provider::FakeProvider;
    use crate::helpers::eventually;
    use crate::process::{Daemon, write_config};
    use sha2::{Digest, Sha256};

    let table = |key: &str| {
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        format!("[clients.app]\nkey_sha256 = \"{hash}\"\nmanage = true\n")
    };
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-alice", serde_json::json!({}));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, &table("tkd_first_key"));
    let daemon = Daemon::start_ready(&config).await;
    let imported = reqwest::Client::new()
        .put(format!("{}/v1/credentials/alice", daemon.url))
        .bearer_auth("tkd_first_key")
        .json(&serde_json::json!({"provider": "cronofy", "refresh_token": "rt-alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::CREATED);

    let addr = daemon.url.trim_start_matches("http://").to_owned();
    let mut conn = one_connection(&addr).await;
    let mut statuses = Vec::new();
    for key in [
        "tkd_first_key",
        "tkd_first_key",
        "tkd_other",
        "tkd_first_key",
    ] {
        statuses.push(hand_out(&mut conn, key).await);
    }
    assert_eq!(statuses, [200, 200, 401, 200]);

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(&table("tkd_first_key"), &table("tkd_second_key")),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually("the new key works", async || {
        hand_out(&mut one_connection(&addr).await, "tkd_second_key").await == 200
    })
    .await;
    // The connection opened before the reload, its key remembered: refused now.
    assert_eq!(hand_out(&mut conn, "tkd_first_key").await, 401);
    assert_eq!(hand_out(&mut conn, "tkd_second_key").await, 200);
    assert_eq!(hand_out(&mut conn, "tkd_first_key").await, 401);
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
}
