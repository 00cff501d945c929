//! Every error class, from real answers of the fake (or of no server at all).

use std::time::{Duration, Instant};

use serde_json::json;
use tokend::provider::ProviderError;

use super::{REDIRECT, cronofy, oauth2, secret};
use crate::fake_provider::{Canned, FakeProvider};

#[tokio::test]
async fn unknown_or_used_code_is_invalid_grant_with_the_description() {
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, "");
    // The fake answers an unknown code as Cronofy does: 400 invalid_grant.
    let err = p
        .exchange_code(&secret("code-x"), REDIRECT, None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::InvalidGrant {
            description: tokend::provider::explain::explain_invalid_grant(
                "errors.unknown_or_used: the code is unknown or was used".into()
            )
        }
    );
    // ...and in Cronofy's validation-error shape.
    fake.push(Canned::json(
        422,
        json!({"errors": {"code": [{"key": "errors.unknown_or_used", "description": "unknown or used"}]}}),
    ));
    let err = p
        .exchange_code(&secret("code-y"), REDIRECT, None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::InvalidGrant {
            description: tokend::provider::explain::explain_invalid_grant(
                "code: errors.unknown_or_used: unknown or used".into()
            )
        }
    );
}

#[tokio::test]
async fn dead_refresh_token_is_invalid_grant() {
    let fake = FakeProvider::start().await;
    let (p, _) = oauth2(&fake, "");
    let err = p.refresh(&secret("rt-gone")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidGrant { ref description } if description.contains("unknown or revoked"))
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    fake.set_client_secrets(&["some-other-secret"]);
    for (p, _) in [
        cronofy(&fake, ""),
        oauth2(&fake, ""),
        oauth2(&fake, r#"auth_method = "client_secret_basic""#),
    ] {
        fake.clear_requests();
        let err = p.refresh(&secret("rt-1")).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidClient { .. }),
            "{err:?}"
        );
        assert_eq!(fake.requests().len(), 1);
    }
    // A 401 without any error code is about the client too.
    let (p, _) = oauth2(&fake, "");
    fake.push(Canned::new(401, ""));
    assert!(matches!(
        p.refresh(&secret("rt-1")).await,
        Err(ProviderError::InvalidClient { .. })
    ));
}

#[tokio::test]
async fn rate_limited_with_retry_after_seconds() {
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, "");
    fake.push(Canned::error(429, "rate_limited").header("retry-after", "17"));
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Duration::from_secs(17)
        }
    );
}

#[tokio::test]
async fn rate_limited_with_retry_after_http_date_on_our_clock() {
    let fake = FakeProvider::start().await;
    // The clock reads 07:28:00 GMT: the date is 150 s later.
    let (p, _) = oauth2(&fake, "");
    fake.push(Canned::new(429, "").header("retry-after", "Wed, 21 Oct 2015 07:30:30 GMT"));
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Duration::from_secs(150)
        }
    );
}

#[tokio::test]
async fn rate_limited_without_retry_after_waits_a_minute() {
    let fake = FakeProvider::start().await;
    let (p, _) = oauth2(&fake, "");
    fake.push(Canned::new(429, "too many"));
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: tokend::provider::http::DEFAULT_RETRY_AFTER
        }
    );
    assert_eq!(
        tokend::provider::http::DEFAULT_RETRY_AFTER,
        Duration::from_secs(60)
    );
}

#[tokio::test]
async fn server_errors_are_transient() {
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, "");
    for status in [500, 502, 503] {
        fake.push(Canned::new(status, "<html>oops</html>"));
        let err = p.refresh(&secret("rt-1")).await.unwrap_err();
        assert_eq!(
            err,
            ProviderError::Transient {
                reason: format!("HTTP {status}")
            }
        );
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn timeout_is_transient() {
    let fake = FakeProvider::start().await;
    let (p, _) = oauth2(&fake, "request_timeout_secs = 1");
    fake.push(Canned::json(200, json!({"access_token": "late"})).delay(Duration::from_secs(3)));
    let started = Instant::now();
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err,
        ProviderError::Transient {
            reason: "no answer within 1s".into()
        }
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port bound but never listened on: connecting is refused. Holding it
    // (rather than closing a listener) keeps any other server, such as the
    // fake started next, from getting the same port and answering.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(
        &fake,
        &format!("api_base_url = \"http://127.0.0.1:{port}\""),
    );
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Transient { reason } if reason.starts_with("connection failed")),
        "{err:?}"
    );
    assert!(fake.requests().is_empty());
    drop(socket);
}

#[tokio::test]
async fn truncated_body_is_transient() {
    let fake = FakeProvider::start().await;
    let (p, _) = oauth2(&fake, "");
    // Headers and the start of a token answer, then the connection drops.
    fake.push(Canned::new(200, r#"{"access_token":"at-1""#).truncated());
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Transient { reason } if reason.contains("truncated")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unusable_answers_are_protocol_errors() {
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, "");
    let cases = [
        Canned::json(200, json!({"token_type": "bearer", "expires_in": 3600})),
        Canned::new(200, "<html>welcome</html>"),
        Canned::new(200, ""),
        Canned::error(403, "access_denied"),
        Canned::error(400, "unsupported_grant_type"),
        Canned::new(404, "not found"),
        // A redirect is not followed (it would carry the secret along).
        Canned::new(307, "").header("location", "https://elsewhere.example/oauth/token"),
    ];
    for canned in cases {
        let status = canned.status;
        fake.push(canned);
        let err = p.refresh(&secret("rt-1")).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Protocol { .. }),
            "{status}: {err:?}"
        );
    }
    assert_eq!(fake.requests().len(), 7);
}

#[tokio::test]
async fn foreign_redirect_uri_is_refused_before_any_call() {
    let fake = FakeProvider::start().await;
    fake.add_code("code-1", "rt-1", json!({}));
    for (p, _) in [cronofy(&fake, ""), oauth2(&fake, "")] {
        for uri in [
            "https://evil.example/callback",
            "https://app.example/callback?x=1",
            "",
        ] {
            let err = p
                .exchange_code(&secret("code-1"), uri, None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, ProviderError::Refused(ref m) if m.contains("redirect_uris")),
                "{err:?}"
            );
        }
    }
    assert!(fake.requests().is_empty());
    // With no redirect_uris configured at all, every exchange is refused.
    let (p, _) = cronofy(&fake, "redirect_uris = []");
    assert!(matches!(
        p.exchange_code(&secret("code-1"), REDIRECT, None).await,
        Err(ProviderError::Refused(_))
    ));
    assert!(fake.requests().is_empty());
}
