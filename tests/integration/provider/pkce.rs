//! PKCE at the provider layer: the `S256` challenge in authorization URLs,
//! the verifier in code exchanges (Cronofy's JSON, RFC 6749 forms), a server
//! that requires it, and the verifier kept out of errors and log lines.

use serde_json::json;
use tokend::provider::{AuthorizationRequest, ProviderError, pkce};

use super::{Logs, REDIRECT, cronofy, oauth2, secret};
use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, Canned, FakeProvider};

/// RFC 7636 appendix B's verifier and its challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[tokio::test]
async fn cronofy_sends_the_verifier_after_the_other_fields() {
    let fake = FakeProvider::start().await;
    fake.add_code("code-1", "rt-1", json!({}));
    let (p, _) = cronofy(&fake, "");
    p.exchange_code(&secret("code-1"), REDIRECT, Some(&secret(VERIFIER)))
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[0].body,
        format!(
            r#"{{"client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}","grant_type":"authorization_code","code":"code-1","redirect_uri":"{REDIRECT}","code_verifier":"{VERIFIER}"}}"#
        )
    );
}

#[tokio::test]
async fn oauth2_sends_the_verifier_in_the_form_and_the_challenge_in_the_url() {
    let fake = FakeProvider::start().await;
    for method in ["client_secret_post", "client_secret_basic"] {
        fake.add_code("code-1", "rt-1", json!({}));
        fake.clear_requests();
        let (p, _) = oauth2(&fake, &format!("auth_method = \"{method}\""));
        p.exchange_code(&secret("code-1"), REDIRECT, Some(&secret(VERIFIER)))
            .await
            .unwrap();
        let fields = fake.requests()[0].fields();
        assert_eq!(fields["code_verifier"], VERIFIER, "{method}");
        assert_eq!(fields["code"], "code-1");
    }
    let (p, _) = oauth2(&fake, "");
    let url = p
        .authorization_url(&AuthorizationRequest {
            redirect_uri: REDIRECT,
            state: "st",
            code_challenge: Some(CHALLENGE),
            ..Default::default()
        })
        .unwrap();
    assert!(
        url.as_str().ends_with(&format!(
            "&state=st&code_challenge={CHALLENGE}&code_challenge_method=S256"
        )),
        "{url}"
    );
    assert!(url.as_str().contains("access_type=offline"), "{url}");
    // Without a challenge, no PKCE parameter at all.
    let url = p
        .authorization_url(&AuthorizationRequest {
            redirect_uri: REDIRECT,
            state: "st",
            ..Default::default()
        })
        .unwrap();
    assert!(!url.as_str().contains("code_challenge"), "{url}");
}

#[tokio::test]
async fn a_server_that_requires_pkce_takes_only_the_matching_verifier() {
    let fake = FakeProvider::start().await;
    fake.require_pkce(true);
    let (p, _) = oauth2(
        &fake,
        &format!("authorization_url = \"{}/oauth2/auth\"", fake.url),
    );
    // Without a challenge the server refuses at once, as django-oauth-toolkit does.
    let plain = p
        .authorization_url(&AuthorizationRequest {
            redirect_uri: REDIRECT,
            state: "st",
            ..Default::default()
        })
        .unwrap();
    let refused = fake.authorize(plain.as_str()).await;
    assert_eq!(refused.param("error"), Some("invalid_request"));
    assert_eq!(
        refused.param("error_description"),
        Some("Code challenge required.")
    );
    assert_eq!(refused.param("code"), None);

    let challenge = pkce::challenge(&secret(VERIFIER));
    assert_eq!(challenge, CHALLENGE);
    let url = p
        .authorization_url(&AuthorizationRequest {
            redirect_uri: REDIRECT,
            state: "st",
            code_challenge: Some(&challenge),
            ..Default::default()
        })
        .unwrap();
    let back = fake.authorize(url.as_str()).await;
    assert_eq!(back.param("state"), Some("st"));
    let code = secret(back.param("code").unwrap());
    let err = p.exchange_code(&code, REDIRECT, None).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Protocol { reason } if reason.contains("Code verifier required")),
        "{err:?}"
    );
    let other = secret(&"x".repeat(43));
    let err = p
        .exchange_code(&code, REDIRECT, Some(&other))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidGrant { .. }), "{err:?}");
    let t = p
        .exchange_code(&code, REDIRECT, Some(&secret(VERIFIER)))
        .await
        .unwrap();
    assert!(t.refresh_token.is_some());
}

#[tokio::test]
async fn the_verifier_never_shows_in_an_error_or_a_log_line() {
    let (logs, _guard) = Logs::capture();
    let fake = FakeProvider::start().await;
    let echo = || {
        Canned::json(
            400,
            json!({"error": "invalid_grant", "error_description": format!("verifier {VERIFIER} does not match")}),
        )
    };
    let (c, _) = cronofy(&fake, "");
    let (o, _) = oauth2(&fake, "");
    let mut errors = Vec::new();
    for p in [&c, &o] {
        fake.push(echo());
        errors.push(
            p.exchange_code(&secret("code-1"), REDIRECT, Some(&secret(VERIFIER)))
                .await
                .unwrap_err(),
        );
    }
    for e in &errors {
        assert_eq!(
            *e,
            ProviderError::InvalidGrant {
                description: tokend::provider::explain::explain_invalid_grant(
                    "verifier [REDACTED] does not match".into()
                )
            }
        );
        assert!(!format!("{e:?}").contains(VERIFIER));
    }
    let logs = logs.text();
    assert!(logs.contains("status=400"), "{logs}");
    assert!(!logs.contains(VERIFIER), "{logs}");
}
