//! Generic OAuth 2.0: form bodies byte for byte, `client_secret_post` and
//! `client_secret_basic`, lenient token answers, RFC 7009 revocation.

use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::json;
use tokend::config::ProviderKind;
use tokend::provider::{AuthorizationRequest, ProviderError};

use super::{REDIRECT, oauth2, secret};
use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, Canned, FakeProvider, Recorded};

const FORM: &str = "application/x-www-form-urlencoded";
const REDIRECT_ENC: &str = "https%3A%2F%2Fapp.example%2Fcallback";

fn assert_form_post(r: &Recorded, path: &str, body: String, basic: bool) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, path);
    assert_eq!(r.headers["content-type"], FORM);
    assert_eq!(r.headers["accept"], "application/json");
    assert_eq!(
        r.headers["user-agent"],
        concat!("tokend/", env!("CARGO_PKG_VERSION"))
    );
    let expected_auth = basic.then(|| {
        let pair = format!("{CLIENT_ID}:{CLIENT_SECRET}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    let auth = r
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(auth, expected_auth);
    assert_eq!(r.body, body);
}

#[tokio::test]
async fn code_exchange_with_client_secret_post() {
    let fake = FakeProvider::start().await;
    fake.add_code("code-1", "rt-1", json!({}));
    let (p, _) = oauth2(&fake, "");
    assert_eq!(p.kind(), ProviderKind::Oauth2);

    let t = p
        .exchange_code(&secret("code-1"), REDIRECT, None)
        .await
        .unwrap();

    assert_form_post(
        &fake.requests()[0],
        "/oauth2/token",
        format!(
            "grant_type=authorization_code&code=code-1&redirect_uri={REDIRECT_ENC}\
             &client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        ),
        false,
    );
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt-1");
}

#[tokio::test]
async fn code_exchange_and_refresh_with_client_secret_basic() {
    let fake = FakeProvider::start().await;
    fake.add_code("code-1", "rt-1", json!({}));
    let (p, _) = oauth2(&fake, r#"auth_method = "client_secret_basic""#);

    p.exchange_code(&secret("code-1"), REDIRECT, None)
        .await
        .unwrap();
    p.refresh(&secret("rt-1")).await.unwrap();

    let reqs = fake.requests();
    assert_form_post(
        &reqs[0],
        "/oauth2/token",
        format!("grant_type=authorization_code&code=code-1&redirect_uri={REDIRECT_ENC}"),
        true,
    );
    assert_form_post(
        &reqs[1],
        "/oauth2/token",
        "grant_type=refresh_token&refresh_token=rt-1".into(),
        true,
    );
}

#[tokio::test]
async fn refresh_with_client_secret_post() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    let (p, _) = oauth2(&fake, r#"auth_method = "client_secret_post""#);

    p.refresh(&secret("rt-1")).await.unwrap();

    assert_form_post(
        &fake.requests()[0],
        "/oauth2/token",
        format!(
            "grant_type=refresh_token&refresh_token=rt-1&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        ),
        false,
    );
}

#[tokio::test]
async fn tolerates_missing_expires_in_and_refresh_token_and_any_case() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    fake.set_expires_in(None);
    let (p, _) = oauth2(&fake, "");

    let t = p.refresh(&secret("rt-1")).await.unwrap();
    assert_eq!(t.expires_in, None);
    assert!(t.refresh_token.is_none());

    fake.push(Canned::json(
        200,
        json!({"access_token": "at-x", "token_type": "BeArEr", "expires_in": 3599,
               "id_token": "eyJhbGciOi.payload.sig", "ext_expires_in": 3599, "scope": "openid email"}),
    ));
    let t = p.refresh(&secret("rt-1")).await.unwrap();
    assert_eq!(t.token_type, "bearer");
    assert_eq!(t.expires_in, Some(3599));
    assert_eq!(t.scope.as_deref(), Some("openid email"));
    // Extras are kept, the id_token is not.
    assert_eq!(t.extras.len(), 1);
    assert_eq!(t.extras["ext_expires_in"], 3599);
}

#[tokio::test]
async fn revoke_per_rfc_7009() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    let (p, _) = oauth2(&fake, "");

    p.revoke(&secret("rt-1")).await.unwrap();
    assert_form_post(
        &fake.requests()[0],
        "/oauth2/revoke",
        format!(
            "token=rt-1&token_type_hint=refresh_token&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        ),
        false,
    );
    assert_eq!(fake.revoked(), ["rt-1"]);
    // Google answers an unknown token with 400 invalid_token: gone is gone.
    fake.push(Canned::error(400, "invalid_token"));
    p.revoke(&secret("rt-1")).await.unwrap();

    let (basic, _) = oauth2(&fake, r#"auth_method = "client_secret_basic""#);
    fake.clear_requests();
    basic.revoke(&secret("rt-2")).await.unwrap();
    assert_form_post(
        &fake.requests()[0],
        "/oauth2/revoke",
        "token=rt-2&token_type_hint=refresh_token".into(),
        true,
    );
}

#[tokio::test]
async fn what_an_oauth2_provider_cannot_do_is_refused_locally() {
    let fake = FakeProvider::start().await;
    let (p, _) = oauth2(&fake, r#"revocation_url = """#);
    let err = p.revoke(&secret("rt-1")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("providers.google.revocation_url")),
        "{err}"
    );
    let err = p.application_calendar("cal").await.unwrap_err();
    assert!(matches!(err, ProviderError::Refused(_)));

    let (p, _) = oauth2(&fake, r#"authorization_url = """#);
    let req = AuthorizationRequest {
        redirect_uri: REDIRECT,
        state: "st",
        ..Default::default()
    };
    let err = p.authorization_url(&req).unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused(m) if m.contains("providers.google.authorization_url")),
        "{err}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn authorization_url_keeps_the_configured_query() {
    let fake = FakeProvider::start().await;
    let (p, _) = oauth2(&fake, "");
    let req = AuthorizationRequest {
        redirect_uri: REDIRECT,
        scope: Some("openid email"),
        state: "st",
        avoid_linking: Some(true),
        provider_name: Some("ignored"),
        code_challenge: None,
    };
    assert_eq!(
        p.authorization_url(&req).unwrap().as_str(),
        format!(
            "https://accounts.example/o/oauth2/auth?access_type=offline&response_type=code\
             &client_id={CLIENT_ID}&redirect_uri={REDIRECT_ENC}&scope=openid+email&state=st"
        )
    );
    let bad = AuthorizationRequest {
        redirect_uri: "https://app.example/callback/",
        ..req
    };
    assert!(matches!(
        p.authorization_url(&bad),
        Err(ProviderError::Refused(_))
    ));
}
