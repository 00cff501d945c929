//! The fake provider's interop switches do what later tests rely on: issue
//! times on the daemon's clock (rounded down when asked), access tokens
//! revoked the moment a refresh issues the next one, validity queries and
//! the bearer route, and `iss` on authorization responses.

use std::time::Duration;

use serde_json::json;
use tokend::clock::Clock;

use super::{REDIRECT, T0, cronofy, secret};
use crate::fake_provider::{CLIENT_ID, FakeProvider, Rotation};

async fn bearer(fake: &FakeProvider, token: &str) -> u16 {
    reqwest::Client::new()
        .get(fake.bearer_url())
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn expiry_counts_from_the_issue_time_rounded_down() {
    let fake = FakeProvider::start().await;
    let clock = Clock::manual(T0 + 700);
    fake.use_clock(clock.clone());
    fake.set_expires_in(Some(60));
    fake.add_refresh_token("rt-1", json!({}));
    let (p, _) = cronofy(&fake, "");

    let exact = p.refresh(&secret("rt-1")).await.unwrap();
    let exact = secrecy::ExposeSecret::expose_secret(&exact.access_token).to_owned();
    let life = fake.access_token_life(&exact).unwrap();
    assert_eq!(
        (life.issued_at, life.expires_at),
        (T0 + 700, Some(T0 + 60_700))
    );

    fake.round_issue_time_down(true);
    let rounded = p.refresh(&secret("rt-1")).await.unwrap();
    let rounded = secrecy::ExposeSecret::expose_secret(&rounded.access_token).to_owned();
    let life = fake.access_token_life(&rounded).unwrap();
    assert_eq!((life.issued_at, life.expires_at), (T0, Some(T0 + 60_000)));
    // Valid up to the millisecond before the server's expiry, not to arrival + 60 s.
    assert!(fake.access_token_valid(&rounded, T0 + 59_999));
    assert!(!fake.access_token_valid(&rounded, T0 + 60_000));
    assert!(!fake.access_token_valid(&rounded, T0 + 60_699));
    assert!(!fake.access_token_valid("at-never-issued", T0 + 1));

    // The bearer route answers on the same clock.
    assert_eq!(bearer(&fake, &rounded).await, 200);
    clock.advance(Duration::from_millis(59_299));
    assert_eq!(bearer(&fake, &rounded).await, 200, "at T0 + 59.999 s");
    clock.advance(Duration::from_millis(1));
    assert_eq!(bearer(&fake, &rounded).await, 401, "at T0 + 60 s");
    assert_eq!(bearer(&fake, "at-never-issued").await, 401);
}

#[tokio::test]
async fn a_refresh_can_revoke_the_previous_access_token_at_once() {
    let fake = FakeProvider::start().await;
    let clock = Clock::manual(T0);
    fake.use_clock(clock.clone());
    fake.set_rotation(Rotation::Grace);
    fake.add_refresh_token("rt-a", json!({}));
    fake.add_refresh_token("rt-b", json!({}));
    let (p, _) = cronofy(&fake, "");
    let token = |t: &tokend::provider::TokenResponse| {
        secrecy::ExposeSecret::expose_secret(&t.access_token).to_owned()
    };

    // Off: the old token lives on until it expires.
    let first = p.refresh(&secret("rt-a")).await.unwrap();
    let second = p
        .refresh(first.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert!(fake.access_token_valid(&token(&first), T0 + 1_000));

    fake.revoke_access_on_refresh(true);
    let other = p.refresh(&secret("rt-b")).await.unwrap();
    clock.advance(Duration::from_secs(5));
    let third = p
        .refresh(second.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    let revoked = fake.access_token_life(&token(&second)).unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(T0 + 5_000),
        "when the next was issued"
    );
    assert!(fake.access_token_valid(&token(&second), T0 + 4_999));
    assert!(!fake.access_token_valid(&token(&second), T0 + 5_000));
    assert!(fake.access_token_valid(&token(&third), T0 + 5_000));
    assert_eq!(bearer(&fake, &token(&second)).await, 401);
    assert_eq!(bearer(&fake, &token(&third)).await, 200);
    // Another grant's token is untouched.
    assert!(fake.access_token_valid(&token(&other), T0 + 5_000));
}

#[tokio::test]
async fn authorization_responses_carry_iss_when_asked() {
    let fake = FakeProvider::start().await;
    fake.set_authorize_extras(json!({"account_id": "acc_9"}));
    let url = format!(
        "{}/oauth/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT}&state=st",
        fake.url
    );
    let back = fake.authorize(&url).await;
    assert!(back.location.starts_with(REDIRECT), "{}", back.location);
    assert_eq!(back.param("iss"), None);
    assert_eq!(back.callback_body().get("iss"), None);

    fake.send_iss(Some("https://id.example"));
    let back = fake.authorize(&url).await;
    assert_eq!(back.param("iss"), Some("https://id.example"));
    assert_eq!(back.callback_body()["iss"], "https://id.example");
    // The code exchanges into a grant with the configured extras.
    let (p, _) = cronofy(&fake, "");
    let t = p
        .exchange_code(&secret(back.param("code").unwrap()), REDIRECT, None)
        .await
        .unwrap();
    assert_eq!(t.extras["account_id"], "acc_9");
}
