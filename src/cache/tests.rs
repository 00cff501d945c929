//! Cache tests: rendering, members moving between grants, health.

use super::*;
use crate::store::{AccessToken, CredentialExtras};
use serde_json::{Value, json};

fn grant(id: i64, creds: &[(&str, Value)], token: &str) -> GrantState {
    GrantState {
        id: GrantId(id),
        provider: "cronofy".into(),
        status: Status::Active,
        access: Some(AccessToken {
            token: SecretString::from(token.to_owned()),
            token_type: "bearer".into(),
            expires_at: 1_700_000_000_000,
            lifetime_secs: 3600,
        }),
        scope: Some("read_write".into()),
        application_calendar_id: None,
        generation: 1,
        last_refresh_at: None,
        next_refresh_at: None,
        consecutive_failures: 0,
        last_error: None,
        credentials: creds
            .iter()
            .map(|(id, ex)| CredentialExtras {
                id: id.to_string(),
                extras: ex.as_object().unwrap().clone(),
            })
            .collect(),
    }
}

#[test]
fn rendered_prefix_is_the_response_without_expires_in() {
    let cache = Cache::new();
    cache.publish(&grant(
        1,
        &[(
            "alice",
            json!({"sub": "s\"1", "scope": "evil", "account_id": "acc"}),
        )],
        "at-1",
    ));
    let e = cache.get("alice").unwrap();
    let body = format!(
        "{},\"expires_in\":5}}",
        e.access.as_ref().unwrap().body_prefix()
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["credential_id"], "alice");
    assert_eq!(v["access_token"], "at-1");
    assert_eq!(v["expires_at"], "2023-11-14T22:13:20Z");
    assert_eq!(v["scope"], "read_write", "extras never mask our fields");
    assert_eq!(v["sub"], "s\"1");
    assert_eq!(v["account_id"], "acc");
    assert!(
        !format!("{e:?}").contains("at-1"),
        "Debug never shows the token"
    );
    let access = e.access.as_ref().unwrap();
    assert!(access.is_token("at-1"));
    assert!(!access.is_token("at-2") && !access.is_token("at-1 ") && !access.is_token(""));
}

#[test]
fn publish_moves_and_drops_members() {
    let cache = Cache::new();
    cache.publish(&grant(1, &[("a", json!({})), ("b", json!({}))], "at-1"));
    assert_eq!(cache.members(GrantId(1)).len(), 2);
    // b moved to grant 2, then grant 1 republished without it.
    cache.publish(&grant(2, &[("b", json!({}))], "at-2"));
    cache.publish(&grant(1, &[("a", json!({}))], "at-3"));
    assert_eq!(cache.get("b").unwrap().grant_id, GrantId(2));
    assert_eq!(cache.get("a").unwrap().grant_id, GrantId(1));
    cache.set_health(GrantId(1), Status::NeedsReauth, 3, Some("dead"), None);
    let a = cache.get("a").unwrap();
    assert_eq!((a.status, a.consecutive_failures), (Status::NeedsReauth, 3));
    assert!(a.access.is_some());
    assert_eq!(
        cache.grant_counts(3),
        GrantCounts {
            active: 1,
            failing: 0,
            needs_reauth: 1
        }
    );
    cache.remove_grant(GrantId(1));
    assert!(cache.get("a").is_none());
    cache.remove_credential("b");
    assert!(cache.is_empty());
}
