//! Grants arriving through the refresher: stored as the provider answered,
//! published as written, or refused with nothing stored.

use secrecy::SecretString;

use super::{Harness, T0};
use crate::model::Status;
use crate::provider::ProviderError;
use crate::refresh::{Import, IntakeError};

fn import(id: &str, rt: &str) -> Import {
    Import {
        id: id.into(),
        provider: "fake".into(),
        refresh_token: SecretString::from(rt.to_owned()),
        access_token: None,
        expires_in: None,
        scope: None,
    }
}

#[tokio::test]
async fn an_import_is_refreshed_at_once_and_published_as_stored() {
    let h = Harness::new().await;
    h.fake.rotates("rt-1", "at-1", "rt-2");
    let out = h.refresher.import(import("alice", "rt-1")).await.unwrap();
    assert!(out.created);
    assert_eq!(h.fake.calls(), ["rt-1"]);
    assert_eq!(h.handed_out("alice"), "at-1");
    assert_eq!(h.entry("alice").grant_id, out.grant_id);
    // The refresh token the provider rotated to is the one kept.
    assert_eq!(h.stored_tokens(out.grant_id).await.0, "rt-2");
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.last_refresh_at, Some(T0), "issued just now");
}

#[tokio::test]
async fn an_import_during_an_outage_is_kept_as_failing_and_retried_later() {
    let h = Harness::new().await;
    h.fake.answer(
        "rt-1",
        Err(ProviderError::RateLimited {
            retry_after: std::time::Duration::from_secs(40),
        }),
    );
    let out = h.refresher.import(import("alice", "rt-1")).await.unwrap();
    assert!(out.created);
    let view = h.store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.consecutive_failures, 1);
    assert_eq!(
        view.next_refresh_at,
        Some(T0 + 40_000),
        "not before Retry-After"
    );
    assert!(view.last_error.unwrap().contains("rate limited"));
    let entry = h.entry("alice");
    assert!(entry.access.is_none());
    assert_eq!(entry.consecutive_failures(), 1);
    assert_eq!(entry.next_refresh_at(), Some(T0 + 40_000));
}

#[tokio::test]
async fn an_import_the_provider_refuses_stores_nothing() {
    let h = Harness::new().await;
    let refused = h.refresher.import(import("alice", "rt-dead")).await;
    assert!(
        matches!(refused, Err(IntakeError::InvalidGrant(_))),
        "{refused:?}"
    );
    h.fake.answer(
        "rt-garbage",
        Err(ProviderError::Protocol {
            reason: "not JSON".into(),
        }),
    );
    let unreadable = h.refresher.import(import("bob", "rt-garbage")).await;
    let Err(IntakeError::Provider(f)) = unreadable else {
        panic!("{unreadable:?}")
    };
    assert!(
        !f.is_transient(),
        "an answer tokend cannot read is not worth waiting for"
    );
    for id in ["alice", "bob"] {
        assert!(h.store.get_credential(id).await.unwrap().is_none());
        assert!(h.cache.get(id).is_none());
    }
}

#[tokio::test]
async fn a_refresh_token_the_provider_refused_for_good_is_refused_again() {
    let h = Harness::new().await;
    h.fake.rotates("rt-1", "at-1", "rt-2");
    let first = h.refresher.import(import("alice", "rt-1")).await.unwrap();
    // rt-2 dies at the provider: the grant needs re-authorization.
    h.clock.advance(std::time::Duration::from_secs(3600));
    let dead = h
        .refresher
        .refresh_grant(first.grant_id, crate::refresh::Trigger::MinTtl(0))
        .await;
    assert!(dead.is_err());
    assert_eq!(h.entry("alice").status, Status::NeedsReauth);
    let again = h.refresher.import(import("bob", "rt-2")).await;
    assert!(
        matches!(again, Err(IntakeError::InvalidGrant(_))),
        "{again:?}"
    );
    assert!(h.store.get_credential("bob").await.unwrap().is_none());
}

#[tokio::test]
async fn a_credential_moved_to_another_grant_leaves_no_orphan_in_the_cache() {
    let h = Harness::new().await;
    h.fake.rotates("rt-1", "at-1", "rt-1");
    h.fake.rotates("rt-9", "at-9", "rt-9");
    let first = h.refresher.import(import("alice", "rt-1")).await.unwrap();
    let second = h.refresher.import(import("alice", "rt-9")).await.unwrap();
    assert!(!second.created);
    assert_ne!(first.grant_id, second.grant_id);
    assert!(h.store.get_grant(first.grant_id).await.unwrap().is_none());
    assert_eq!(h.handed_out("alice"), "at-9");
    assert_eq!(h.entry("alice").grant_id, second.grant_id);
}
