//! What following and loading rely on: the change feed, the full load
//! (every shape of grant), and key rotation.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::refresh::{claimed, commit, written};
use super::{Fixture, T0, access, extras, new_credential, put, s};
use crate::model::{Extras, GrantId, GrantState};
use crate::store::crypto::MasterKey;
use crate::store::{NewCredential, Store, StoreError};

pub(crate) async fn the_change_feed_reports_writes_and_deletes(f: Fixture) {
    let store = &f.store;
    let alice = put(store, "alice", "rt-a", None, &Extras::new()).await;
    let mut count = 0;
    let seq = store.load_each(&mut |_| count += 1).await.unwrap();
    assert_eq!(count, 1);
    let nothing = store.changes_since(seq).await.unwrap();
    assert_eq!(nothing.seq, seq);
    assert!(nothing.grants.is_empty() && nothing.deleted_credentials.is_empty());

    // Another process writes.
    let other = (f.reopen)(&f.key).await.unwrap();
    put(&other, "bob", "rt-a", None, &Extras::new()).await;
    other.delete_credential("alice").await.unwrap();
    let changes = store.changes_since(seq).await.unwrap();
    assert!(changes.seq > seq);
    assert_eq!(changes.deleted_credentials, ["alice"]);
    assert_eq!(changes.grants.len(), 1);
    let ids: Vec<_> = changes.grants[0]
        .credentials
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, ["bob"]);

    // A commit and a failure are changes too.
    let lease = claimed(&other, alice.grant_id()).await;
    other
        .record_failure(&lease, "503", T0 + 5_000)
        .await
        .unwrap();
    let next = store.changes_since(changes.seq).await.unwrap();
    assert_eq!(next.grants.len(), 1);
    assert_eq!(next.grants[0].consecutive_failures, 1);
    written(
        other
            .commit_refresh(&commit(alice.grant_id(), lease.generation, None, "at"))
            .await
            .unwrap(),
    );
    let last = store.changes_since(next.seq).await.unwrap();
    assert_eq!(
        last.grants[0]
            .access
            .as_ref()
            .unwrap()
            .token
            .expose_secret(),
        "at"
    );
    // A re-imported credential is no longer reported deleted.
    put(&other, "alice", "rt-x", None, &Extras::new()).await;
    let back = store.changes_since(seq).await.unwrap();
    assert!(
        back.deleted_credentials.is_empty(),
        "{:?}",
        back.deleted_credentials
    );
}

/// Everything the cache is built from, comparable.
pub(crate) fn summary(g: &GrantState) -> String {
    format!(
        "{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}|{:?}|{:?}|{:?}",
        g.id,
        g.status,
        g.provider,
        g.access.as_ref().map(|a| (
            a.token.expose_secret().to_owned(),
            &a.token_type,
            a.expires_at,
            a.lifetime_secs,
            a.lifetime_issued
        )),
        g.scope,
        g.application_calendar_id,
        g.next_refresh_at,
        g.generation,
        g.last_refresh_at,
        g.consecutive_failures,
        g.last_error,
        g.credentials.iter().map(|c| &c.id).collect::<Vec<_>>(),
        g.credentials.iter().map(|c| &c.extras).collect::<Vec<_>>(),
    )
}

/// Ten grants of every shape (two providers, with and without access
/// tokens, scopes, an application calendar, odd characters, linked
/// credentials, a failing and a dead grant), written in one batch.
pub(crate) async fn varied_grants(store: &Store) -> Vec<GrantId> {
    let tokens: Vec<SecretString> = (0..10).map(|i| s(&format!("rt-{i}"))).collect();
    let access: Vec<_> = (0..10)
        .map(|i| crate::model::AccessToken {
            token: s(&format!("at \"{i}\"\n\u{e9}")),
            token_type: "Bearer".into(),
            expires_at: T0 + i * 1000,
            lifetime_secs: 3600 + i,
            // An imported token's remaining time is no issued lifetime.
            lifetime_issued: i % 2 == 0,
        })
        .collect();
    let extras: Vec<Extras> = (0..10)
        .map(|i| extras(json!({"sub": format!("s\"{i}"), "linking_profile": {"n": i}})))
        .collect();
    let ids: Vec<String> = (0..10).map(|i| format!("c{i:02}")).collect();
    let mut batch: Vec<NewCredential<'_>> = (0..10)
        .map(|i| NewCredential {
            provider: if i % 3 == 0 { "other" } else { "cronofy" },
            // Every fourth grant has no access token yet.
            scope: (i % 2 == 0).then_some("read_write"),
            application_calendar_id: (i == 5).then_some("cal-5"),
            next_refresh_at: Some(T0 + 60_000),
            ..new_credential(
                &ids[i],
                &tokens[i],
                (i % 4 != 0).then(|| &access[i]),
                &extras[i],
            )
        })
        .collect();
    // Two more credentials linked to the grant of c03 (same refresh token),
    // one of them sorting before it.
    let empty = Extras::new();
    for id in ["a-linked", "z-linked"] {
        batch.push(NewCredential {
            id,
            extras: &empty,
            ..batch[3]
        });
    }
    let put = store.put_credentials(&batch).await.unwrap();
    let linked: Vec<_> = put[10]
        .state
        .credentials
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        linked,
        ["a-linked", "c03"],
        "later entries see earlier ones"
    );
    let lease = claimed(store, put[1].grant_id()).await;
    store
        .record_failure(&lease, "provider said \"no\"\nagain", T0 + 5_000)
        .await
        .unwrap();
    let lease = claimed(store, put[2].grant_id()).await;
    store
        .mark_needs_reauth(&lease, "invalid_grant")
        .await
        .unwrap();
    put.iter().map(|p| p.grant_id()).collect()
}

pub(crate) async fn a_full_load_sees_what_reads_see(f: Fixture) {
    let store = &f.store;
    let ids = varied_grants(store).await;
    let mut whole = Vec::new();
    store.load_each(&mut |g| whole.push(g)).await.unwrap();
    assert_eq!(whole.len(), 10, "linked credentials share their grant");
    assert_eq!(store.count_grants().await.unwrap(), 10);
    let linked = whole.iter().find(|g| g.id == ids[3]).unwrap();
    let linked_ids: Vec<&str> = linked.credentials.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(linked_ids, ["a-linked", "c03", "z-linked"], "in id order");
    let mut seen: Vec<GrantId> = whole.iter().map(|g| g.id).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), whole.len(), "each grant once");
    for g in &whole {
        let stored = store.get_grant(g.id).await.unwrap().unwrap().state;
        assert_eq!(summary(g), summary(&stored));
    }
    let lifetimes: Vec<_> = whole
        .iter()
        .filter_map(|g| g.access.as_ref())
        .map(|a| (a.lifetime_secs, a.lifetime_issued))
        .collect();
    assert!(
        lifetimes.contains(&(3601, false)) && lifetimes.contains(&(3602, true)),
        "whether the provider issued a lifetime is kept: {lifetimes:?}"
    );
    let failing = whole.iter().find(|g| g.id == ids[1]).unwrap();
    assert_eq!(
        failing.last_error.as_deref(),
        Some("provider said \"no\"\nagain")
    );
}

pub(crate) async fn rotating_the_key_reseals_everything(f: Fixture) {
    let store = &f.store;
    let at = access("at-1", T0 + 3_600_000);
    let g = put(store, "alice", "rt-1", Some(&at), &Extras::new())
        .await
        .grant_id();
    let gen0 = store.get_grant(g).await.unwrap().unwrap().state.generation;
    written(
        store
            .commit_refresh(&commit(g, gen0, Some("rt-2"), "at-1"))
            .await
            .unwrap(),
    );
    put(store, "bob", "rt-b", None, &Extras::new()).await;
    let old_key_id = store.key_id();

    let new_key = MasterKey::generate();
    assert_eq!(store.rotate_key(&new_key).await.unwrap(), 2);
    store.close().await;

    let reopened = (f.reopen)(&new_key).await.unwrap();
    assert_ne!(reopened.key_id(), old_key_id);
    let grant = reopened.get_grant(g).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "rt-2");
    assert_eq!(
        grant.previous_refresh_token.unwrap().expose_secret(),
        "rt-1"
    );
    assert_eq!(grant.state.access.unwrap().token.expose_secret(), "at-1");
    assert_eq!(
        grant.state.generation,
        gen0 + 2,
        "rotation bumps the generation"
    );
    // Lookup hashes were recomputed under the new key.
    assert!(
        put(&reopened, "carol", "rt-b", None, &Extras::new())
            .await
            .linked
    );
    reopened.close().await;
    // The old key (or any other) no longer opens the database.
    for key in [&*f.key, &MasterKey::generate()] {
        let refused = (f.reopen)(key).await;
        assert!(
            matches!(refused, Err(StoreError::WrongKey { .. })),
            "{refused:?}"
        );
    }
}
