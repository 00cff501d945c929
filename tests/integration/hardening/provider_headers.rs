//! A provider answer tokend cannot read as HTTP (megabytes of headers) is a
//! protocol error like any unreadable answer: 502 `provider_error`, not a
//! transient 503 retried as if the provider were merely down.

use reqwest::StatusCode;
use serde_json::json;

use crate::api::assert_error;
use crate::fake_provider::Canned;
use crate::helpers::{REDIRECT_URI, send, spawn_app};

/// A token answer padded with `count` headers of `size` bytes each.
fn padded(count: usize, size: usize) -> Canned {
    let body = json!({"access_token": "at-x", "token_type": "bearer", "expires_in": 3600});
    (0..count).fold(Canned::json(200, body), |c, i| {
        c.header(&format!("x-pad-{i}"), &"p".repeat(size))
    })
}

#[tokio::test]
async fn megabytes_of_headers_are_a_provider_error() {
    let app = spawn_app().await;
    // 2 MB in big headers, then 1,000 small ones: too large, too many.
    for (count, size) in [(256, 8192), (1000, 8)] {
        app.fake.push(padded(count, size));
        let got = send(app.put("/v1/credentials/alice").json(&json!({
            "provider": "cronofy", "refresh_token": "rt-a",
        })))
        .await;
        assert_error(&got, StatusCode::BAD_GATEWAY, "provider_error");
        assert_eq!(
            send(app.get("/v1/credentials/alice")).await.0,
            StatusCode::NOT_FOUND,
            "an unreadable first answer stores nothing"
        );

        app.fake.push(padded(count, size));
        let got = send(
            app.post("/v1/credentials/bob/authorization-code")
                .json(&json!({
                    "provider": "google", "code": "c", "redirect_uri": REDIRECT_URI,
                })),
        )
        .await;
        assert_error(&got, StatusCode::BAD_GATEWAY, "provider_error");
    }
}
