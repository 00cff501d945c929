//! The per-provider rate limiter and the 429 pause, on a manual clock.

use std::time::Duration;

use serde_json::json;
use tokend::provider::ProviderError;

use super::{T0, cronofy, oauth2, secret};
use crate::fake_provider::{Canned, FakeProvider};

/// Long enough for a call that could go through to reach the fake.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn burst_then_the_next_call_waits_for_the_clock() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    // 60 a minute: one cell a second once the burst of 2 is spent.
    let (p, clock) = cronofy(&fake, "max_requests_per_minute = 60\nburst = 2");
    p.refresh(&secret("rt-1")).await.unwrap();
    p.refresh(&secret("rt-1")).await.unwrap();

    let p2 = p.clone();
    let third = tokio::spawn(async move { p2.refresh(&secret("rt-1")).await });
    settle().await;
    assert_eq!(fake.requests().len(), 2);
    assert!(!third.is_finished());

    clock.advance(Duration::from_millis(999));
    settle().await;
    assert_eq!(
        fake.requests().len(),
        2,
        "a cell is not back before a full second"
    );

    clock.advance(Duration::from_millis(1));
    tokio::time::timeout(Duration::from_secs(1), third)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn every_kind_of_call_and_every_secret_retry_takes_a_cell() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    fake.set_client_secrets(&["old-secret"]);
    let (p, clock) = cronofy(
        &fake,
        "max_requests_per_minute = 6\nburst = 2\nprevious_client_secrets = [\"old-secret\"]",
    );
    // Current secret refused, previous accepted: two requests, the whole burst.
    p.application_calendar("cal-1").await.unwrap();
    assert_eq!(fake.requests().len(), 2);

    let p2 = p.clone();
    let revoke = tokio::spawn(async move { p2.revoke(&secret("rt-1")).await });
    settle().await;
    assert!(!revoke.is_finished());
    clock.advance(Duration::from_secs(10));
    tokio::time::timeout(Duration::from_secs(1), revoke)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_429_pauses_the_whole_provider_until_retry_after() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    let (p, clock) = cronofy(&fake, "");
    assert_eq!(p.paused_until(), None);

    fake.push(Canned::error(429, "slow_down").header("retry-after", "120"));
    let err = p.refresh(&secret("rt-1")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Duration::from_secs(120)
        }
    );
    assert_eq!(p.paused_until(), Some(T0 + 120_000));

    // Every kind of call fails at once, with the time still to wait, and
    // nothing reaches the provider.
    clock.advance(Duration::from_secs(45));
    let wait = ProviderError::RateLimited {
        retry_after: Duration::from_secs(75),
    };
    assert_eq!(p.refresh(&secret("rt-1")).await.unwrap_err(), wait);
    assert_eq!(p.revoke(&secret("rt-1")).await.unwrap_err(), wait);
    assert_eq!(p.application_calendar("cal").await.unwrap_err(), wait);
    assert_eq!(fake.requests().len(), 1);

    clock.advance(Duration::from_secs(75));
    assert_eq!(p.paused_until(), None);
    p.refresh(&secret("rt-1")).await.unwrap();
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn the_pause_is_per_provider() {
    let fake = FakeProvider::start().await;
    fake.add_refresh_token("rt-1", json!({}));
    let (cronofy, _) = cronofy(&fake, "");
    let (google, _) = oauth2(&fake, "");
    fake.push(Canned::new(429, "").header("retry-after", "30"));
    assert!(matches!(
        cronofy.refresh(&secret("rt-1")).await,
        Err(ProviderError::RateLimited { .. })
    ));
    assert!(cronofy.paused_until().is_some());
    assert_eq!(google.paused_until(), None);
    google.refresh(&secret("rt-1")).await.unwrap();
}
