//! The start-up load: pages of grants read as JSON must give exactly the
//! grants the store holds, whatever falls on a page boundary.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::*;
use crate::clock::Clock;

const T0: i64 = 1_700_000_000_000;

/// Everything the cache is built from, comparable.
fn summary(g: &GrantState) -> String {
    format!(
        "{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}|{:?}|{:?}|{:?}",
        g.id,
        g.status,
        g.provider,
        g.access.as_ref().map(|a| (
            a.token.expose_secret().to_owned(),
            &a.token_type,
            a.expires_at,
            a.lifetime_secs
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

#[tokio::test]
async fn every_page_size_loads_the_grants_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let tokens: Vec<SecretString> = (0..10)
        .map(|i| SecretString::from(format!("rt-{i}")))
        .collect();
    let access: Vec<AccessToken> = (0..10)
        .map(|i| AccessToken {
            token: SecretString::from(format!("at \"{i}\"\n\u{e9}")),
            token_type: "Bearer".into(),
            expires_at: T0 + i * 1000,
            lifetime_secs: 3600,
        })
        .collect();
    let extras: Vec<Extras> = (0..10)
        .map(|i| {
            json!({"sub": format!("s\"{i}"), "linking_profile": {"n": i}})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    let ids: Vec<String> = (0..10).map(|i| format!("c{i:02}")).collect();
    let mut batch: Vec<NewCredential<'_>> = (0..10)
        .map(|i| NewCredential {
            id: &ids[i],
            provider: if i % 3 == 0 { "other" } else { "cronofy" },
            refresh_token: &tokens[i],
            // Every fourth grant has no access token yet.
            access: (i % 4 != 0).then(|| &access[i]),
            scope: (i % 2 == 0).then_some("read_write"),
            extras: &extras[i],
            application_calendar_id: (i == 5).then_some("cal-5"),
            next_refresh_at: Some(T0 + 60_000),
            last_refresh_at: None,
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
    let failing = put[1].grant_id;
    store
        .record_failure(failing, "me", "provider said \"no\"\nagain", T0 + 5_000)
        .await
        .unwrap();
    store
        .mark_needs_reauth(put[2].grant_id, "me", "invalid_grant")
        .await
        .unwrap();

    let (_, whole) = store.load_all().await.unwrap();
    assert_eq!(whole.len(), 10, "linked credentials share their grant");
    let linked = whole.iter().find(|g| g.id == put[3].grant_id).unwrap();
    let linked_ids: Vec<&str> = linked.credentials.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(linked_ids, ["a-linked", "c03", "z-linked"], "in id order");
    assert!(
        whole.windows(2).all(|w| w[0].id < w[1].id),
        "in grant order"
    );
    for g in &whole {
        let stored = store.get_grant(g.id).await.unwrap().unwrap().state;
        assert_eq!(summary(g), summary(&stored));
    }
    assert_eq!(
        whole
            .iter()
            .find(|g| g.id == failing)
            .unwrap()
            .last_error
            .as_deref(),
        Some("provider said \"no\"\nagain")
    );
    for page_size in [1, 2, 3, 7, 100] {
        let mut paged = Vec::new();
        store
            .load_pages(page_size, |g| paged.push(summary(&g)))
            .await
            .unwrap();
        let expected: Vec<String> = whole.iter().map(summary).collect();
        assert_eq!(paged, expected, "page size {page_size}");
    }
    assert_eq!(store.count_grants().await.unwrap(), 10);
}
