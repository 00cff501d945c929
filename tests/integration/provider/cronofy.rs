//! Cronofy: JSON bodies byte for byte, extras, revocation, application
//! calendars and authorization URLs.

use secrecy::ExposeSecret;
use serde_json::json;
use tokend::config::ProviderKind;
use tokend::model::{Extras, merge_extras};
use tokend::provider::{AuthorizationRequest, ProviderError};

use super::{REDIRECT, cronofy, secret};
use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, Canned, FakeProvider, Recorded};

fn assert_json_post(r: &Recorded, path: &str, body: String) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, path);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["accept"], "application/json");
    assert_eq!(
        r.headers["user-agent"],
        concat!("tokend/", env!("CARGO_PKG_VERSION"))
    );
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.body, body);
}

#[tokio::test]
async fn code_exchange_sends_exact_json_and_keeps_extras() {
    let fake = FakeProvider::start().await;
    let profile =
        json!({"provider_name": "google", "profile_id": "pro_1", "profile_name": "a@example.com"});
    fake.add_code(
        "code-1",
        "rt-1",
        json!({"account_id": "acc_1", "sub": "acc_1", "linking_profile": profile}),
    );
    let (p, _) = cronofy(&fake, "");
    assert_eq!(p.kind(), ProviderKind::Cronofy);
    assert_eq!(p.name(), "cronofy");

    let t = p
        .exchange_code(&secret("code-1"), REDIRECT, None)
        .await
        .unwrap();

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_json_post(
        &reqs[0],
        "/oauth/token",
        format!(
            r#"{{"client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}","grant_type":"authorization_code","code":"code-1","redirect_uri":"{REDIRECT}"}}"#
        ),
    );
    assert_eq!(t.token_type, "bearer");
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt-1");
    assert_eq!(t.expires_in, Some(3600));
    assert_eq!(t.scope.as_deref(), Some("read_write"));
    assert_eq!(t.extras["account_id"], "acc_1");
    assert_eq!(t.extras["sub"], "acc_1");
    assert_eq!(t.extras["linking_profile"], profile);
}

#[tokio::test]
async fn refresh_sends_exact_json_and_its_fewer_extras_merge() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-7", json!({"linking_profile": {"profile_id": "pro_2"}}));
    let (p, _) = cronofy(&fake, "");

    let t = p.refresh(&secret("rt-7")).await.unwrap();

    assert_json_post(
        &fake.requests()[0],
        "/oauth/token",
        format!(
            r#"{{"client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}","grant_type":"refresh_token","refresh_token":"rt-7"}}"#
        ),
    );
    assert_eq!(t.access_token.expose_secret(), "at-1");
    // Cronofy keeps its refresh tokens: none in the answer means "keep yours".
    assert!(t.refresh_token.is_none());
    // The refresh answer lacks sub/account_id; merged over what the grant had, they stay.
    assert!(!t.extras.contains_key("sub"));
    let mut grant: Extras = serde_json::from_value(
        json!({"account_id": "acc_1", "sub": "acc_1", "linking_profile": {"profile_id": "pro_1"}}),
    )
    .unwrap();
    merge_extras(&mut grant, &t.extras);
    assert_eq!(grant["sub"], "acc_1");
    assert_eq!(grant["account_id"], "acc_1");
    assert_eq!(grant["linking_profile"]["profile_id"], "pro_2");
}

#[tokio::test]
async fn revoke_sends_exact_json_and_unknown_tokens_are_fine() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    let (p, _) = cronofy(&fake, "");

    p.revoke(&secret("rt-1")).await.unwrap();
    assert_json_post(
        &fake.requests()[0],
        "/oauth/token/revoke",
        format!(
            r#"{{"client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}","token":"rt-1"}}"#
        ),
    );
    assert!(!fake.is_valid("rt-1"));
    // Revoking again (an unknown token) is still a success.
    p.revoke(&secret("rt-1")).await.unwrap();
    // So is a server that calls the token dead with an error instead of a 200.
    fake.push(Canned::error(400, "invalid_grant"));
    p.revoke(&secret("rt-1")).await.unwrap();
    fake.push(Canned::error(503, "unavailable"));
    assert!(matches!(
        p.revoke(&secret("rt-1")).await,
        Err(ProviderError::Transient { .. })
    ));
}

#[tokio::test]
async fn application_calendar_sends_exact_json_and_returns_its_extras() {
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, "");

    let t = p.application_calendar("my-unique-string").await.unwrap();

    assert_json_post(
        &fake.requests()[0],
        "/v1/application_calendars",
        format!(
            r#"{{"client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}","application_calendar_id":"my-unique-string"}}"#
        ),
    );
    assert!(t.refresh_token.is_some());
    assert_eq!(t.extras["application_calendar_id"], "my-unique-string");
    assert_eq!(t.extras["sub"], "apc_my-unique-string");
    assert_eq!(t.extras["linking_profile"]["provider_name"], "cronofy");
    // Idempotent at Cronofy: asking again works and issues a new token set.
    let again = p.application_calendar("my-unique-string").await.unwrap();
    assert_ne!(
        again.refresh_token.unwrap().expose_secret(),
        t.refresh_token.unwrap().expose_secret()
    );
}

#[tokio::test]
async fn authorization_url_on_the_app_host() {
    let fake = FakeProvider::start().await;
    let (p, _) = cronofy(&fake, "");
    let mut req = AuthorizationRequest {
        redirect_uri: REDIRECT,
        scope: Some("read_events create_event"),
        state: "signed.state",
        avoid_linking: Some(true),
        provider_name: Some("google"),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    };
    let url = p.authorization_url(&req).unwrap();
    assert_eq!(
        url.as_str(),
        format!(
            "{}/app/oauth/authorize?response_type=code&client_id={CLIENT_ID}\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&scope=read_events+create_event\
             &state=signed.state&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256&avoid_linking=true&provider_name=google",
            fake.url
        )
    );
    req.avoid_linking = Some(false);
    req.provider_name = None;
    req.code_challenge = None;
    let url = p.authorization_url(&req).unwrap();
    assert!(
        url.as_str()
            .ends_with("&state=signed.state&avoid_linking=false"),
        "{url}"
    );

    req.scope = None;
    assert!(
        matches!(p.authorization_url(&req), Err(ProviderError::Refused(m)) if m.contains("scope"))
    );
    req.scope = Some("read_write");
    req.redirect_uri = "https://evil.example/callback";
    let err = p.authorization_url(&req).unwrap_err();
    assert_eq!(
        err,
        ProviderError::Refused(
            "redirect_uri \"https://evil.example/callback\" is not in providers.cronofy.redirect_uris".into()
        )
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn real_data_centre_hosts_in_authorization_urls() {
    for (dc, host) in [
        ("us", "app.cronofy.com"),
        ("de", "app-de.cronofy.com"),
        ("uk", "app-uk.cronofy.com"),
        ("ca", "app-ca.cronofy.com"),
        ("au", "app-au.cronofy.com"),
        ("sg", "app-sg.cronofy.com"),
    ] {
        let config: tokend::config::ProviderConfig = toml::from_str(&format!(
            "kind = \"cronofy\"\ndata_center = \"{dc}\"\nclient_id = \"c\"\nclient_secret = \"s\"\nredirect_uris = [\"{REDIRECT}\"]"
        ))
        .unwrap();
        let p = tokend::provider::build("cronofy", &config, tokend::clock::Clock::manual(0), None)
            .unwrap();
        let req = AuthorizationRequest {
            redirect_uri: REDIRECT,
            scope: Some("read_write"),
            state: "s",
            ..Default::default()
        };
        let url = p.authorization_url(&req).unwrap();
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some(host), "{dc}");
        assert_eq!(url.path(), "/oauth/authorize");
    }
}
