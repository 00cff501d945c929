//! A store that refuses writes: no provider call (its result could not be
//! kept), the tokens held are still served, and everything resumes once
//! the store takes writes again, found by the store's own probe.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use secrecy::SecretString;

use super::{Harness, until};
use crate::refresh::{Import, IntakeError, Outcome, RefreshError, Trigger};

#[tokio::test]
async fn no_provider_call_while_the_store_refuses_writes() {
    let h = Harness::new().await;
    let g = h.grant("alice", "rt-1", Some(("at-old", 60_000)), 0).await;
    h.fake.rotates("rt-1", "at-new", "rt-2");
    h.store.health().down("tokend.db", "disk full (injected)");

    let e = h
        .refresher
        .refresh_grant(g, Trigger::MinTtl(120_000))
        .await
        .unwrap_err();
    assert!(matches!(e, RefreshError::StoreUnavailable), "{e:?}");
    assert!(e.is_store_outage());
    // An import that would spend its refresh token is refused before the call.
    h.fake.rotates("rt-bob", "at-bob", "rt-bob-2");
    let import = Import {
        id: "bob".into(),
        provider: "fake".into(),
        refresh_token: SecretString::from("rt-bob"),
        access_token: None,
        expires_in: None,
        scope: None,
    };
    let e = h.refresher.import(import).await.unwrap_err();
    assert!(matches!(e, IntakeError::StoreUnavailable), "{e:?}");
    assert!(
        h.fake.calls().is_empty(),
        "no provider call: {:?}",
        h.fake.calls()
    );
    assert_eq!(h.handed_out("alice"), "at-old", "still served");

    h.store.health().up();
    let out = h.refresher.refresh_grant(g, Trigger::MinTtl(120_000)).await;
    assert_eq!(out.unwrap(), Outcome::Refreshed);
    assert_eq!(h.fake.calls(), ["rt-1"]);
    assert_eq!(h.handed_out("alice"), "at-new");
}

#[tokio::test]
async fn the_probe_turns_the_store_up_once_the_file_takes_writes_again() {
    let h = Harness::new().await;
    h.grant("alice", "rt-1", None, 0).await;
    let path = h.dir.path().join("tokend.db");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let health = h.store.health().clone();
    health.down("tokend.db", "read-only (test)");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(health.clone().watch(h.store.clone(), stopped));

    // Probed (every second) and still refused.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert!(!health.is_up());
    assert!(health.reason().unwrap().contains("read-only"));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    until("the store is up", || health.is_up()).await;
    let _ = stop.send(true);
}
