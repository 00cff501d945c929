//! Cache tests: rendering, lookup by the id inside the text, credentials
//! moving between grants, per-grant counts, health.

use super::*;
use crate::model::{AccessToken, CredentialExtras};
use secrecy::{ExposeSecret, SecretString};
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
            lifetime_issued: true,
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
    assert_eq!(e.id(), "alice");
    let body = format!("{},\"expires_in\":5}}", e.body_prefix());
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
    assert!(e.is_token("at-1"));
    assert!(!e.is_token("at-2") && !e.is_token("at-1 ") && !e.is_token(""));
}

#[test]
fn the_access_token_comes_back_unescaped() {
    let cache = Cache::new();
    cache.publish(&grant(1, &[("alice", json!({}))], "a\"b\\c/é"));
    let e = cache.get("alice").unwrap();
    let token = e.access_token().unwrap();
    assert_eq!(token.expose_secret(), "a\"b\\c/é");
    let mut g = grant(2, &[("bob", json!({}))], "x");
    g.access = None;
    cache.publish(&g);
    assert!(cache.get("bob").unwrap().access_token().is_none());
}

#[test]
fn a_grant_without_a_token_is_found_by_id_and_matches_no_token() {
    let cache = Cache::new();
    let mut g = grant(7, &[("id.with:all@the_chars-0", json!({}))], "x");
    g.access = None;
    cache.publish(&g);
    let e = cache.get("id.with:all@the_chars-0").unwrap();
    assert_eq!(e.id(), "id.with:all@the_chars-0");
    assert!(e.access.is_none() && !e.is_token("x") && !e.is_token(""));
    assert!(cache.get("id.with:all@the_chars-").is_none());
}

#[test]
fn publishing_again_replaces_the_entry_whole() {
    let cache = Cache::new();
    cache.publish(&grant(1, &[("a", json!({}))], "at-1"));
    let old = cache.get("a").unwrap();
    let mut next = grant(1, &[("a", json!({}))], "at-2");
    next.generation = 2;
    cache.publish(&next);
    assert_eq!(cache.len(), 1);
    let new = cache.get("a").unwrap();
    assert!(new.is_token("at-2") && new.generation == 2);
    assert!(old.is_token("at-1"), "a reader keeps the entry it got");
    drop(old);
    // The replaced key's text is gone too: the map still finds "a".
    assert_eq!(cache.get("a").unwrap().id(), "a");
}

#[test]
fn credentials_move_between_grants_and_grants_count_once() {
    let cache = Cache::new();
    cache.publish(&grant(1, &[("a", json!({})), ("b", json!({}))], "at-1"));
    assert_eq!(
        cache.grant_counts(3).active,
        1,
        "two credentials, one grant"
    );
    // b moved to grant 2, then grant 1 republished without it.
    cache.publish(&grant(2, &[("b", json!({}))], "at-2"));
    cache.publish(&grant(1, &[("a", json!({}))], "at-3"));
    assert_eq!(cache.get("b").unwrap().grant_id, GrantId(2));
    assert_eq!(cache.get("a").unwrap().grant_id, GrantId(1));

    let mut dead = grant(1, &[("a", json!({})), ("b", json!({}))], "at-3");
    (dead.status, dead.consecutive_failures) = (Status::NeedsReauth, 3);
    dead.last_error = Some("dead".into());
    cache.set_health(&dead);
    let a = cache.get("a").unwrap();
    assert_eq!(
        (a.status, a.consecutive_failures()),
        (Status::NeedsReauth, 3)
    );
    assert_eq!(a.last_error(), Some("dead"));
    assert!(a.is_token("at-3"), "health leaves the token alone");
    let b = cache.get("b").unwrap();
    assert_eq!(
        (b.grant_id, b.status),
        (GrantId(2), Status::Active),
        "a credential that moved away keeps its new grant's health"
    );
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

#[test]
fn failing_grants_carry_their_health_and_recover() {
    let cache = Cache::new();
    let mut g = grant(1, &[("a", json!({}))], "at-1");
    cache.publish(&g);
    assert_eq!(cache.get("a").unwrap().consecutive_failures(), 0);
    (g.consecutive_failures, g.next_refresh_at) = (2, Some(42));
    g.last_error = Some("provider returned 503".into());
    cache.set_health(&g);
    let a = cache.get("a").unwrap();
    assert_eq!(a.consecutive_failures(), 2);
    assert_eq!(a.next_refresh_at(), Some(42));
    assert_eq!(cache.grant_counts(2).failing, 1);
    assert_eq!(cache.provider_of(&a).as_ref(), "cronofy");
    (g.consecutive_failures, g.next_refresh_at, g.last_error) = (0, Some(99), None);
    cache.publish(&g);
    let a = cache.get("a").unwrap();
    assert_eq!((a.consecutive_failures(), a.last_error()), (0, None));
    assert_eq!(cache.grant_counts(2).active, 1);
}

#[test]
fn a_refresh_mark_lasts_until_the_next_publish_of_the_grant() {
    let cache = Cache::new();
    let g = grant(1, &[("alice", json!({})), ("bob", json!({}))], "at-1");
    cache.publish(&g);
    cache.publish(&grant(2, &[("carol", json!({}))], "at-2"));
    assert!(!cache.get_settled("alice").unwrap().1);
    cache.set_refreshing(&g, true);
    for id in ["alice", "bob"] {
        let (entry, refreshing) = cache.get_settled(id).unwrap();
        assert!(refreshing, "{id}");
        assert!(entry.is_token("at-1"), "the token stays until the result");
    }
    assert!(!cache.get_settled("carol").unwrap().1, "another grant");
    // The result's publish swaps the token and clears the mark together.
    cache.publish(&grant(
        1,
        &[("alice", json!({})), ("bob", json!({}))],
        "at-3",
    ));
    let (entry, refreshing) = cache.get_settled("alice").unwrap();
    assert!(!refreshing && entry.is_token("at-3"));
    // Ending without a result clears it too.
    cache.set_refreshing(&g, true);
    cache.set_refreshing(&g, false);
    assert!(!cache.get_settled("bob").unwrap().1);
}

#[test]
fn hand_outs_are_recorded_and_outlive_a_publish() {
    let cache = Cache::new();
    cache.publish(&grant(1, &[("a", json!({})), ("b", json!({}))], "t1"));
    let handed_out = |cache: &Cache| {
        let mut seen = Vec::new();
        cache.usage(|u| seen.push((u.credential_id().to_owned(), u.handed_out(), u.is_lapsed())));
        seen.sort();
        seen
    };
    cache.set_now(1_000);
    assert!(cache.hand_out("a").is_some());
    assert!(cache.hand_out("nobody").is_none());
    cache.set_now(900);
    cache.hand_out("a"); // a clock that went back does not move it back
    cache.restore_hand_out("b", 500);
    cache.restore_hand_out("a", 700);
    assert_eq!(
        handed_out(&cache),
        [("a".into(), 1_000, false), ("b".into(), 500, false)]
    );
    cache.usage(|u| {
        if u.credential_id() == "b" {
            assert!(u.set_lapsed(true) && !u.set_lapsed(true));
        }
    });
    assert!(cache.is_lapsed("b") && !cache.is_lapsed("a"));
    // A refresh replaces the entries; what the budget recorded stays.
    cache.publish(&grant(1, &[("a", json!({})), ("b", json!({}))], "t2"));
    assert_eq!(
        handed_out(&cache),
        [("a".into(), 1_000, false), ("b".into(), 500, true)]
    );
    assert_eq!(cache.get("a").unwrap().grant_id, GrantId(1));
}

#[test]
fn the_body_is_the_token_response_byte_for_byte() {
    let cache = Cache::new();
    let mut g = grant(
        1,
        &[("alice", json!({"sub": "s\"1", "scope": "evil", "n": 5}))],
        "a\"b\\c/é",
    );
    g.access.as_mut().unwrap().token_type = "mac\u{1}".into();
    cache.publish(&g);
    assert_eq!(
        cache.get("alice").unwrap().body_prefix(),
        r#"{"credential_id":"alice","access_token":"a\"b\\c/é","token_type":"mac\u0001","expires_at":"2023-11-14T22:13:20Z","scope":"read_write","n":5,"sub":"s\"1""#
    );
    g.scope = None;
    g.credentials[0].extras.clear();
    cache.publish(&g);
    let e = cache.get("alice").unwrap();
    assert_eq!(
        e.body_prefix(),
        r#"{"credential_id":"alice","access_token":"a\"b\\c/é","token_type":"mac\u0001","expires_at":"2023-11-14T22:13:20Z","scope":null"#
    );
    assert!(e.is_token("a\"b\\c/é") && !e.is_token("a\"b\\c/"));
    assert_eq!(e.id(), "alice");
}

#[test]
fn an_entry_and_its_slot_stay_small() {
    // At a million credentials every byte here is a megabyte: the entry
    // with its Arc's counts fits a 96-byte block, a map slot is 32 bytes.
    assert!(std::mem::size_of::<TokenEntry>() <= 80);
    assert_eq!(std::mem::size_of::<(Key, Meta)>(), 32);
}
