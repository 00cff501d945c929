//! Credentials in and out: puts, linking by refresh token, moves and
//! deletes.

use secrecy::ExposeSecret;
use serde_json::json;

use super::{Fixture, T0, access, extras, new_credential, put, s};
use crate::model::{Extras, Status};
use crate::store::NewCredential;

pub(crate) async fn put_and_read_back(f: Fixture) {
    let store = &f.store;
    let at = access("AT-1234567890", T0 + 3_600_000);
    let out = put(
        store,
        "alice",
        "RT-0987654321",
        Some(&at),
        &extras(json!({"sub": "acc_1"})),
    )
    .await;
    assert!(out.created && !out.linked && out.orphaned_grant.is_none());
    // What the put reports is what a read finds.
    let grant = store.get_grant(out.grant_id()).await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose_secret(), "RT-0987654321");
    assert!(grant.previous_refresh_token.is_none());
    for state in [&out.state, &grant.state] {
        let a = state.access.as_ref().unwrap();
        assert_eq!(a.token.expose_secret(), "AT-1234567890");
        assert_eq!((a.expires_at, a.lifetime_secs), (T0 + 3_600_000, 3600));
        assert_eq!(state.credentials[0].id, "alice");
        assert_eq!(state.credentials[0].extras["sub"], "acc_1");
        assert_eq!(state.next_refresh_at, Some(T0 + 1000));
        assert_eq!(
            (state.status, state.consecutive_failures),
            (Status::Active, 0)
        );
    }
    assert_eq!(out.state.generation, grant.state.generation);
    let view = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(view.grant_id, out.grant_id());
    assert_eq!(view.scope.as_deref(), Some("read_write"));
    assert_eq!(view.expires_at, Some(T0 + 3_600_000));
    assert_eq!(view.created_at, T0);
    assert_eq!(
        store.grant_id_of("alice").await.unwrap(),
        Some(out.grant_id())
    );
    assert_eq!(
        store
            .grant_by_refresh_token("cronofy", &s("RT-0987654321"))
            .await
            .unwrap(),
        Some(out.grant_id())
    );
    assert!(store.get_credential("nobody").await.unwrap().is_none());
    assert!(store.grant_id_of("nobody").await.unwrap().is_none());
    assert_eq!(store.count_grants().await.unwrap(), 1);
    store.ping().await.unwrap();
}

pub(crate) async fn a_shared_refresh_token_links_credentials_to_one_grant(f: Fixture) {
    let store = &f.store;
    let a = put(
        store,
        "alice",
        "shared-rt",
        None,
        &extras(json!({"sub": "a"})),
    )
    .await;
    let b = put(
        store,
        "bob",
        "shared-rt",
        None,
        &extras(json!({"sub": "b"})),
    )
    .await;
    assert!(b.linked && b.created);
    assert_eq!(a.grant_id(), b.grant_id());
    // The linked put reports the grant with both credentials, each with its
    // own extras.
    let ids: Vec<_> = b.state.credentials.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["alice", "bob"]);
    assert_eq!(b.state.credentials[0].extras["sub"], "a");
    let grant = store.get_grant(a.grant_id()).await.unwrap().unwrap();
    assert_eq!(grant.state.credentials.len(), 2);
    assert_eq!(
        store.get_credential("bob").await.unwrap().unwrap().extras["sub"],
        "b"
    );
    assert_eq!(
        store.get_credential("alice").await.unwrap().unwrap().extras["sub"],
        "a"
    );
}

pub(crate) async fn a_linked_credential_starts_with_the_grants_extras(f: Fixture) {
    let store = &f.store;
    let first = extras(
        json!({"account_id": "acc_1", "sub": "acc_1", "linking_profile": {"profile_id": "pro_1"}}),
    );
    put(store, "alice", "shared-rt", None, &first).await;
    // An import brings no extras: it shows the grant's at once.
    let b = put(store, "bob", "shared-rt", None, &Extras::new()).await;
    let bob = &b.state.credentials[1];
    assert_eq!(bob.id, "bob");
    assert_eq!(bob.extras, first, "the put reports them");
    assert_eq!(
        store.get_credential("bob").await.unwrap().unwrap().extras,
        first,
        "and stores them"
    );
    // What arrives with a credential is merged over the grant's.
    let own = extras(json!({"sub": "acc_3"}));
    let c = put(store, "carol", "shared-rt", None, &own).await;
    let carol = &c.state.credentials[2].extras;
    assert_eq!(
        (&carol["sub"], &carol["account_id"]),
        (&json!("acc_3"), &json!("acc_1"))
    );
    assert_eq!(carol["linking_profile"]["profile_id"], "pro_1");
    // The others keep theirs.
    let alice = store.get_credential("alice").await.unwrap().unwrap();
    assert_eq!(alice.extras, first);
}

pub(crate) async fn another_providers_identical_token_is_another_grant(f: Fixture) {
    let store = &f.store;
    let a = put(store, "alice", "shared-rt", None, &Extras::new()).await;
    let rt = s("shared-rt");
    let other = store
        .put_credential(&NewCredential {
            provider: "google",
            ..new_credential("carol", &rt, None, &Extras::new())
        })
        .await
        .unwrap();
    assert!(!other.linked);
    assert_ne!(other.grant_id(), a.grant_id());
    assert_eq!(other.state.provider, "google");
}

pub(crate) async fn deleting_the_last_credential_deletes_the_grant(f: Fixture) {
    let store = &f.store;
    let a = put(store, "alice", "shared-rt", None, &Extras::new()).await;
    put(store, "bob", "shared-rt", None, &Extras::new()).await;
    let d = store.delete_credential("alice").await.unwrap().unwrap();
    assert_eq!(d.grant_id, a.grant_id());
    assert!(!d.grant_deleted);
    let d = store.delete_credential("bob").await.unwrap().unwrap();
    assert!(d.grant_deleted);
    assert!(store.get_grant(a.grant_id()).await.unwrap().is_none());
    assert!(store.delete_credential("bob").await.unwrap().is_none());
    // The token may come back, as a new grant.
    let again = put(store, "bob", "shared-rt", None, &Extras::new()).await;
    assert!(again.created && !again.linked);
}

pub(crate) async fn moving_a_credential_drops_the_orphaned_grant(f: Fixture) {
    let store = &f.store;
    let first = put(store, "alice", "rt-1", None, &Extras::new()).await;
    let second = put(store, "alice", "rt-2", None, &Extras::new()).await;
    assert!(!second.created);
    assert_eq!(second.orphaned_grant, Some(first.grant_id()));
    assert!(store.get_grant(first.grant_id()).await.unwrap().is_none());
    assert_eq!(second.state.credentials.len(), 1);
}

pub(crate) async fn a_linked_import_keeps_the_longer_lived_access_token(f: Fixture) {
    let store = &f.store;
    let long = access("at-long", T0 + 3_600_000);
    let short = access("at-short", T0 + 60_000);
    let a = put(store, "alice", "rt", Some(&long), &Extras::new()).await;
    let b = put(store, "bob", "rt", Some(&short), &Extras::new()).await;
    let kept = |state: &crate::model::GrantState| {
        state
            .access
            .as_ref()
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    };
    assert_eq!(kept(&b.state), "at-long", "reported as written");
    assert_eq!(
        b.state.generation, a.state.generation,
        "no token was written"
    );
    let longer = access("at-longer", T0 + 7_200_000);
    let c = put(store, "carol", "rt", Some(&longer), &Extras::new()).await;
    assert_eq!(kept(&c.state), "at-longer");
    assert!(
        c.state.generation > a.state.generation,
        "a token write bumps the generation"
    );
    let read = store.get_grant(a.grant_id()).await.unwrap().unwrap();
    assert_eq!(kept(&read.state), "at-longer");
    assert_eq!(read.state.generation, c.state.generation);
}

pub(crate) async fn a_failed_first_refresh_is_stored_as_one_failure(f: Fixture) {
    let store = &f.store;
    let rt = s("rt");
    let none = Extras::new();
    let failed = NewCredential {
        next_refresh_at: Some(T0 + 30_000),
        failure: Some("provider unavailable: 503"),
        ..new_credential("alice", &rt, None, &none)
    };
    let out = store.put_credential(&failed).await.unwrap();
    let view = store.get_credential("alice").await.unwrap().unwrap();
    for (failures, error, next) in [
        (
            out.state.consecutive_failures,
            out.state.last_error.as_deref(),
            out.state.next_refresh_at,
        ),
        (
            view.consecutive_failures,
            view.last_error.as_deref(),
            view.next_refresh_at,
        ),
    ] {
        assert_eq!(failures, 1);
        assert_eq!(error, Some("provider unavailable: 503"));
        assert_eq!(next, Some(T0 + 30_000));
    }
    assert_eq!(view.status, Status::Active);
    // The same token failing again for another credential counts once more.
    let again = NewCredential {
        failure: Some("provider unavailable: 502"),
        ..new_credential("bob", &rt, None, &none)
    };
    let out = store.put_credential(&again).await.unwrap();
    assert!(out.linked);
    assert_eq!(out.state.consecutive_failures, 2);
}
