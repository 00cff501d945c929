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
