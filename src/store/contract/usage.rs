//! The contract of the last hand-outs (the refresh budget's order).

use secrecy::SecretString;

use super::{Fixture, T0, access, new_credential, put, s};
use crate::model::Extras;
use crate::store::NewCredential;

pub(crate) async fn last_hand_outs_are_kept_latest_first(f: Fixture) {
    let store = &f.store;
    let at = access("AT-1", T0 + 3_600_000);
    for id in ["alice", "bob", "carol"] {
        put(store, id, &format!("RT-{id}"), Some(&at), &Extras::new()).await;
    }
    let read = || async {
        let mut seen = Vec::new();
        store
            .hand_outs_each(&mut |id, at| seen.push((id.to_owned(), at)))
            .await
            .unwrap();
        seen.sort();
        seen
    };
    assert!(read().await.is_empty(), "never handed out");
    let batch = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(id, at)| (id.to_string(), *at)).collect()
    };
    store
        .record_hand_outs(&batch(&[("alice", T0 + 5_000), ("bob", T0), ("ghost", T0)]))
        .await
        .unwrap();
    // An older time never replaces a later one; unknown ids are skipped.
    store
        .record_hand_outs(&batch(&[("alice", T0 + 1_000), ("bob", T0 + 9_000)]))
        .await
        .unwrap();
    assert_eq!(
        read().await,
        batch(&[("alice", T0 + 5_000), ("bob", T0 + 9_000)])
    );
    // More than a statement's and a page's worth.
    let many: Vec<(String, i64)> = (0..10_050).map(|i| (format!("x{i:05}"), T0 + i)).collect();
    let tokens: Vec<SecretString> = many.iter().map(|(id, _)| s(&format!("RT-{id}"))).collect();
    let none = Extras::new();
    let news: Vec<NewCredential<'_>> = many
        .iter()
        .zip(&tokens)
        .map(|((id, _), rt)| new_credential(id, rt, None, &none))
        .collect();
    store.put_credentials(&news).await.unwrap();
    store.record_hand_outs(&many).await.unwrap();
    assert_eq!(read().await.len(), 2 + 10_050);
}
