//! Batched writes: many refresh results in one transaction, each with its
//! own compare-and-set.

use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::clock::Clock;

const T0: i64 = 1_700_000_000_000;

fn access(token: &str) -> AccessToken {
    AccessToken {
        token: SecretString::from(token.to_owned()),
        token_type: "bearer".into(),
        expires_at: T0 + 3_600_000,
        lifetime_secs: 3600,
    }
}

#[tokio::test]
async fn a_conflict_in_a_batch_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let extras = Extras::new();
    let mut grants = Vec::new();
    for (id, rt) in [("a", "rt-a"), ("b", "rt-b")] {
        let rt = SecretString::from(rt.to_owned());
        let new = NewCredential {
            id,
            provider: "cronofy",
            refresh_token: &rt,
            access: None,
            scope: None,
            extras: &extras,
            application_calendar_id: None,
            next_refresh_at: Some(T0),
            last_refresh_at: None,
        };
        grants.push(store.put_credential(&new).await.unwrap().grant_id);
    }
    let (seq_before, _) = store.load_all().await.unwrap();
    let (at_a, at_b) = (access("at-a"), access("at-b"));
    let write = |access| RefreshWrite {
        refresh_token: None,
        access,
        scope: None,
        extras: &extras,
        next_refresh_at: T0 + 3_000_000,
    };
    let (wa, wb) = (write(&at_a), write(&at_b));
    // Grant b is expected at a generation it is not at: it conflicts.
    let outcomes = store
        .write_refreshes(&[(grants[0], 0, &wa), (grants[1], 7, &wb)])
        .await
        .unwrap();
    assert!(matches!(
        outcomes[0],
        CasOutcome::Written { generation: 1, .. }
    ));
    assert_eq!(outcomes[1], CasOutcome::Conflict);
    let (seq_after, _) = store.load_all().await.unwrap();
    assert_eq!(seq_after, seq_before + 1, "one transaction");
    let a = store.get_grant(grants[0]).await.unwrap().unwrap();
    assert_eq!(a.state.access.unwrap().token.expose_secret(), "at-a");
    let b = store.get_grant(grants[1]).await.unwrap().unwrap();
    assert!(b.state.access.is_none() && b.state.generation == 0);

    // Nothing to write: the change number stays.
    let none = store.write_refreshes(&[(grants[1], 7, &wb)]).await.unwrap();
    assert_eq!(none, vec![CasOutcome::Conflict]);
    assert_eq!(store.load_all().await.unwrap().0, seq_after);
}
