//! Client-secret rotation, and secrets kept out of every error and log line.

use serde_json::json;
use tokend::provider::ProviderError;

use super::{Logs, REDIRECT, cronofy, oauth2, secret};
use crate::fake_provider::{CLIENT_SECRET, Canned, FakeProvider};

const OLD: &str = "old-SECRET-secret-4d1e";
const OLDER: &str = "older-SECRET-secret-8c2b";
const REFRESH: &str = "rt-SECRET-refresh-7f3a";
const CODE: &str = "code-SECRET-9b2c";
const ACCESS: &str = "at-SECRET-access-5e6f";
const ALL: [&str; 5] = [CLIENT_SECRET, OLD, REFRESH, CODE, ACCESS];

fn sent_secret(fake: &FakeProvider, i: usize) -> String {
    fake.requests()[i].field("client_secret").unwrap()
}

#[tokio::test]
async fn previous_secrets_are_tried_in_order_and_the_one_that_works_is_remembered() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token(REFRESH, json!({}));
    fake.set_client_secrets(&[OLD]);
    let (p, _) = cronofy(
        &fake,
        &format!("previous_client_secrets = [\"{OLDER}\", \"{OLD}\"]"),
    );

    p.refresh(&secret(REFRESH)).await.unwrap();
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(
        [
            sent_secret(&fake, 0),
            sent_secret(&fake, 1),
            sent_secret(&fake, 2)
        ],
        [CLIENT_SECRET, OLDER, OLD]
    );

    // The next call starts with the secret that worked.
    fake.clear_requests();
    p.refresh(&secret(REFRESH)).await.unwrap();
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(sent_secret(&fake, 0), OLD);

    // The provider now takes only the new secret: the remembered one fails,
    // the others are tried in configured order, and the new one is remembered.
    fake.set_client_secrets(&[CLIENT_SECRET]);
    fake.clear_requests();
    p.refresh(&secret(REFRESH)).await.unwrap();
    assert_eq!(
        [sent_secret(&fake, 0), sent_secret(&fake, 1)],
        [OLD, CLIENT_SECRET]
    );
    fake.clear_requests();
    p.refresh(&secret(REFRESH)).await.unwrap();
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(sent_secret(&fake, 0), CLIENT_SECRET);
}

#[tokio::test]
async fn invalid_client_only_after_every_secret_failed() {
    let fake = FakeProvider::start().await;
    fake.set_client_secrets(&["none-of-ours"]);
    let (p, _) = oauth2(
        &fake,
        &format!(
            "auth_method = \"client_secret_basic\"\nprevious_client_secrets = [\"{OLDER}\", \"{OLD}\"]"
        ),
    );
    let err = p.refresh(&secret(REFRESH)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidClient { .. }),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 3);
    // Other answers end the search at once: the secret was not the problem.
    fake.clear_requests();
    fake.push(Canned::error(503, "unavailable"));
    assert!(matches!(
        p.refresh(&secret(REFRESH)).await,
        Err(ProviderError::Transient { .. })
    ));
    assert_eq!(fake.requests().len(), 1);
}

/// A fake that echoes the secrets it was sent (and every client secret we
/// have) in its error text.
fn echo(status: u16, error: &str, sent: &str) -> Canned {
    Canned::json(
        status,
        json!({"error": error, "error_description": format!("bad {sent} for {CLIENT_SECRET} and {OLD}")}),
    )
}

#[tokio::test]
async fn no_secret_in_any_error_debug_output_or_log_line() {
    let (logs, _guard) = Logs::capture();
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, &format!("previous_client_secrets = [\"{OLD}\"]"));
    let mut errors = Vec::new();

    for canned in [
        echo(400, "invalid_grant", CODE),
        echo(401, "invalid_client", CODE),
        echo(401, "invalid_client", CODE),
        echo(403, "access_denied", CODE),
        echo(400, "invalid_request", CODE),
        Canned::json(
            422,
            json!({"errors": {"code": [{"key": "errors.unknown_or_used", "description": format!("{CODE} used")}]}}),
        ),
        Canned::new(500, format!("{REFRESH} {CLIENT_SECRET}")),
        Canned::new(200, format!("{{\"refresh_token\": \"{REFRESH}\"}}")),
        Canned::new(200, format!("not json {REFRESH}")),
    ] {
        fake.push(canned);
        errors.push(
            p.exchange_code(&secret(CODE), REDIRECT, None)
                .await
                .unwrap_err(),
        );
    }
    for canned in [
        echo(400, "invalid_grant", REFRESH),
        echo(404, "not_found", REFRESH),
    ] {
        fake.push(canned);
        errors.push(p.refresh(&secret(REFRESH)).await.unwrap_err());
    }
    fake.push(echo(403, "forbidden", REFRESH));
    errors.push(p.revoke(&secret(REFRESH)).await.unwrap_err());
    errors.push(
        p.exchange_code(&secret(CODE), "https://evil.example/", None)
            .await
            .unwrap_err(),
    );
    fake.push(echo(429, "slow_down", REFRESH));
    errors.push(p.refresh(&secret(REFRESH)).await.unwrap_err());
    errors.push(p.refresh(&secret(REFRESH)).await.unwrap_err()); // paused

    let (o, _) = oauth2(
        &fake,
        &format!("auth_method = \"client_secret_basic\"\nprevious_client_secrets = [\"{OLD}\"]"),
    );
    fake.push(echo(400, "invalid_grant", REFRESH));
    errors.push(o.refresh(&secret(REFRESH)).await.unwrap_err());
    errors.push(o.application_calendar("cal").await.unwrap_err());

    for e in &errors {
        for text in [e.to_string(), format!("{e:?}")] {
            for s in ALL {
                assert!(!text.contains(s), "{s} in {text}");
            }
        }
    }
    // Descriptions are kept, with the echoed secrets blanked out.
    assert_eq!(
        errors[0],
        ProviderError::InvalidGrant {
            description: tokend::provider::explain::explain_invalid_grant(
                "bad [REDACTED] for [REDACTED] and [REDACTED]".into()
            )
        }
    );

    // A successful answer and the providers themselves do not show secrets either.
    fake.push(Canned::json(
        200,
        json!({"access_token": ACCESS, "refresh_token": REFRESH, "token_type": "bearer"}),
    ));
    let t = o.refresh(&secret(REFRESH)).await.unwrap();
    for text in [format!("{t:?}"), format!("{p:?}"), format!("{o:?}")] {
        for s in ALL {
            assert!(!text.contains(s), "{s} in {text}");
        }
    }

    let logs = logs.text();
    for s in ALL {
        assert!(!logs.contains(s), "{s} in the logs:\n{logs}");
    }
    // Each call is logged: provider, endpoint, status, duration.
    assert!(
        logs.contains("provider=cronofy endpoint=\"token\" status=400 elapsed_ms="),
        "{logs}"
    );
    assert!(
        logs.contains("provider=google endpoint=\"token\" status=200"),
        "{logs}"
    );
}
