//! Refreshes that fail: recorded, retried on backoff (or after a 429's
//! pause), reported to callers with when to come back; `invalid_grant`
//! believed only after every other way in was tried.

use secrecy::SecretString;

use super::fake::tokens;
use super::{Harness, T0};
use crate::model::{Extras, Status};
use crate::provider::ProviderError;
use crate::refresh::{EventKind, Outcome, RefreshError, Trigger};
use crate::store::{Claim, NewCredential};

fn transient() -> ProviderError {
    ProviderError::Transient {
        reason: "503".into(),
    }
}

#[tokio::test]
async fn a_transient_failure_is_recorded_and_retried_on_backoff() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", Some(("at-1", 60_000)), 0).await;
    h.fake.answer("rt-1", Err(transient()));

    let err = h
        .refresher
        .refresh_grant(g, Trigger::Scheduled)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    // The first retry waits up to retry_initial_secs (1 s), with jitter.
    let retry_at = err.retry_at().unwrap();
    assert!((T0..=T0 + 1_000).contains(&retry_at), "{retry_at}");
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.consecutive_failures, 1);
    assert_eq!(view.next_refresh_at, Some(retry_at));
    assert!(view.last_error.unwrap().contains("503"));
    assert_eq!(view.status, Status::Active);
    // The cache keeps handing out the still-valid token, and knows why.
    let entry = h.entry("alice");
    assert_eq!(h.handed_out("alice"), "at-1");
    assert_eq!(entry.consecutive_failures(), 1);
    assert_eq!(entry.next_refresh_at(), Some(retry_at));
    // The failure write released the lease.
    let other = h.other_process().await;
    assert!(matches!(
        other.claim(g, 1_000).await.unwrap(),
        Claim::Acquired { .. }
    ));
}

#[tokio::test]
async fn a_429_is_retried_after_the_pause_and_never_before() {
    let h = Harness::new().await;
    let a = h.grant("alice", "rt-a", None, 0).await;
    let limited = ProviderError::RateLimited {
        retry_after: std::time::Duration::from_secs(30),
    };
    h.fake.answer("rt-a", Err(limited));
    let err = h
        .refresher
        .refresh_grant(a, Trigger::MinTtl(0))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    // Retry-After plus up to a tenth of it, to spread the waiting grants.
    let retry_at = err.retry_at().unwrap();
    assert!(
        (T0 + 30_000..=T0 + 33_000).contains(&retry_at),
        "{retry_at}"
    );

    // Another grant's 429 paused the whole provider for longer: a caller
    // learns the later time.
    let b = h.grant("bob", "rt-b", None, 0).await;
    h.fake.answer("rt-b", Err(transient()));
    h.fake.pause_until(T0 + 60_000);
    let err = h
        .refresher
        .refresh_grant(b, Trigger::MinTtl(0))
        .await
        .unwrap_err();
    assert_eq!(err.retry_at(), Some(T0 + 60_000));
}

#[tokio::test]
async fn invalid_grant_is_believed_only_after_the_previous_token_failed_too() {
    let h = Harness::new().await;
    let mut events = h.refresher.subscribe();
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.rotates("rt-1", "at-1", "rt-2");
    h.refresher
        .refresh_grant(g, Trigger::MinTtl(0))
        .await
        .unwrap();
    // rt-2 is refused, and so is rt-1 (the fake knows it no more).
    h.fake.forget("rt-1");
    h.fake.answer(
        "rt-2",
        Err(ProviderError::InvalidGrant {
            description: "revoked".into(),
        }),
    );
    h.clock.advance(std::time::Duration::from_secs(3600));
    let err = h
        .refresher
        .refresh_grant(g, Trigger::Scheduled)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RefreshError::NeedsReauth(d) if d == "revoked"),
        "{err:?}"
    );
    assert_eq!(h.fake.calls(), ["rt-1", "rt-2", "rt-1"]);
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(
        (view.status, view.next_refresh_at),
        (Status::NeedsReauth, None)
    );
    assert_eq!(h.entry("alice").status, Status::NeedsReauth);
    let event = events.try_recv().unwrap();
    assert_eq!(event.event, EventKind::NeedsReauth);
    assert_eq!(event.credential_ids, ["alice"]);
    // From now on: no call, the verdict again.
    let again = h.refresher.refresh_grant(g, Trigger::MinTtl(0)).await;
    assert!(matches!(again, Err(RefreshError::NeedsReauth(_))));
    assert_eq!(h.fake.calls().len(), 3);
}

#[tokio::test]
async fn the_previous_token_recovers_a_rotation_lost_before_its_commit() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", None, 0).await;
    h.fake.rotates("rt-1", "at-1", "rt-2");
    h.refresher
        .refresh_grant(g, Trigger::MinTtl(0))
        .await
        .unwrap();
    // The provider no longer takes rt-2 (say it rotated it in an answer we
    // never stored) but still takes rt-1.
    h.fake.forget("rt-1");
    h.fake.rotates("rt-1", "at-9", "rt-9");
    h.clock.advance(std::time::Duration::from_secs(3600));
    let out = h.refresher.refresh_grant(g, Trigger::Scheduled).await;
    assert_eq!(out.unwrap(), Outcome::Refreshed);
    assert_eq!(h.fake.calls(), ["rt-1", "rt-2", "rt-1"]);
    assert_eq!(h.handed_out("alice"), "at-9");
    assert_eq!(
        h.stored_tokens(g).await,
        ("rt-9".to_owned(), Some("rt-2".to_owned()))
    );
}

#[tokio::test]
async fn a_refused_application_calendar_is_provisioned_again() {
    let h = Harness::new().await;
    let rt = SecretString::from("rt-cal".to_owned());
    let out = h
        .store
        .put_credential(&NewCredential {
            id: "cal",
            provider: "fake",
            refresh_token: &rt,
            access: None,
            scope: None,
            extras: &Extras::new(),
            application_calendar_id: Some("cal-1"),
            next_refresh_at: Some(T0),
            last_refresh_at: None,
            failure: None,
        })
        .await
        .unwrap();
    h.cache.publish(&out.state);
    h.fake
        .calendar("cal-1", Ok(tokens("at-cal", Some("rt-cal-2"))));
    let result = h
        .refresher
        .refresh_grant(out.grant_id(), Trigger::MinTtl(0))
        .await;
    assert_eq!(result.unwrap(), Outcome::Refreshed);
    assert_eq!(h.fake.calls(), ["rt-cal", "calendar:cal-1"]);
    assert_eq!(h.handed_out("cal"), "at-cal");
    assert_eq!(h.stored_tokens(out.grant_id()).await.0, "rt-cal-2");
}

#[tokio::test]
async fn repeated_failures_announce_failing_and_a_success_recovered() {
    let h = Harness::new().await;
    let mut events = h.refresher.subscribe();
    let g = h.grant("alice", "rt-1", Some(("at-1", 600_000)), 0).await;
    h.fake.answer("rt-1", Err(transient()));
    h.fake.answer("rt-1", Err(transient()));
    h.fake.rotates("rt-1", "at-2", "rt-2");
    for _ in 0..2 {
        let err = h.refresher.refresh_grant(g, Trigger::Scheduled).await;
        assert!(err.unwrap_err().is_transient());
        h.clock.advance(std::time::Duration::from_secs(300));
    }
    // notify.failing_after = 2 in the harness.
    assert_eq!(events.try_recv().unwrap().event, EventKind::Failing);
    assert_eq!(h.entry("alice").consecutive_failures(), 2);
    let out = h.refresher.refresh_grant(g, Trigger::Scheduled).await;
    assert_eq!(out.unwrap(), Outcome::Refreshed);
    let recovered = events.try_recv().unwrap();
    assert_eq!(recovered.event, EventKind::Recovered);
    assert_eq!(recovered.consecutive_failures, 0);
    assert_eq!(h.entry("alice").consecutive_failures(), 0);
    assert!(events.try_recv().is_err(), "one event per transition");
}

#[tokio::test]
async fn a_grant_of_a_provider_no_longer_configured_fails_visibly() {
    let h = Harness::new().await;
    let rt = SecretString::from("rt-x".to_owned());
    let out = h
        .store
        .put_credential(&NewCredential {
            id: "orphan",
            provider: "removed",
            refresh_token: &rt,
            access: None,
            scope: None,
            extras: &Extras::new(),
            application_calendar_id: None,
            next_refresh_at: Some(T0),
            last_refresh_at: None,
            failure: None,
        })
        .await
        .unwrap();
    let err = h
        .refresher
        .refresh_grant(out.grant_id(), Trigger::MinTtl(0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RefreshError::UnknownProvider(p) if p == "removed"),
        "{err:?}"
    );
    let view = h.store.get_credential("orphan").await.unwrap().unwrap();
    assert_eq!(view.consecutive_failures, 1);
    assert!(view.last_error.unwrap().contains("removed"));
    assert!(h.fake.calls().is_empty());
}
