//! Glob patterns, bearer parsing, and a connection's remembered key.

use super::*;

#[test]
fn globs() {
    assert!(glob_match("*", "anything"));
    assert!(glob_match("user-*", "user-42"));
    assert!(!glob_match("user-*", "svc-1"));
    assert!(glob_match("a?c", "abc"));
    assert!(!glob_match("a?c", "abbc"));
    assert!(glob_match("*@example.com", "x@example.com"));
    assert!(glob_match("a*b*c", "a-b-x-c"));
    assert!(!glob_match("a*b*c", "a-b-x"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exactly"));
}

fn clients(keys: &[(&str, &str)]) -> Arc<Clients> {
    let clients = keys
        .iter()
        .map(|(name, key)| {
            Arc::new(Client {
                name: (*name).into(),
                key_sha256: Some(Sha256::digest(key.as_bytes()).into()),
                unix_uids: Vec::new(),
                patterns: vec!["*".into()],
                manage: false,
                read_tokens: true,
            })
        })
        .collect();
    Arc::new(Clients { clients })
}

fn bearer_headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = format!("Bearer {key}");
    h.insert(header::AUTHORIZATION, value.parse().unwrap());
    h
}

#[test]
fn a_remembered_key_identifies_the_same_client_and_no_other() {
    let peer = Peer::Tcp { local_port: 1 };
    let before = clients(&[("a", "tkd_a"), ("b", "tkd_b")]);
    let memo = KeyMemo::default();
    let who = |clients: &Arc<Clients>, key: &str| {
        clients
            .identify_remembered(&bearer_headers(key), peer, &memo)
            .map(|c| c.name.clone())
    };
    assert_eq!(who(&before, "tkd_a").as_deref(), Some("a"));
    assert_eq!(who(&before, "tkd_a").as_deref(), Some("a"));
    // Another key on the same connection is checked in full.
    assert_eq!(who(&before, "tkd_b").as_deref(), Some("b"));
    assert_eq!(who(&before, "tkd_x"), None);
    assert_eq!(who(&before, "tkd_b").as_deref(), Some("b"));
    // After a reload that dropped the key, the memo counts for nothing.
    let after = clients(&[("a", "tkd_a")]);
    assert_eq!(who(&after, "tkd_b"), None);
    assert_eq!(who(&after, "tkd_a").as_deref(), Some("a"));
    assert_eq!(format!("{memo:?}"), "KeyMemo(..)");
    // The same key written differently is checked in full: still itself.
    let differently = bearer_headers("tkd_a ");
    let c = after.identify_remembered(&differently, peer, &memo);
    assert_eq!(c.map(|c| c.name.clone()).as_deref(), Some("a"));
}

#[test]
fn same_secret_compares_every_byte() {
    let key = b"tkd_0123456789abcdefghijklmnopqrstuvwxyz";
    assert!(same_secret(key, key));
    assert!(same_secret(b"", b""));
    for i in 0..key.len() {
        let mut other = *key;
        other[i] ^= 1;
        assert!(!same_secret(key, &other), "byte {i}");
    }
    assert!(!same_secret(key, &key[..key.len() - 1]));
}

#[test]
fn bearer_parsing() {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, "Bearer tkd_abc".parse().unwrap());
    assert_eq!(bearer(&h), Some("tkd_abc"));
    h.insert(header::AUTHORIZATION, "bearer  tkd_abc ".parse().unwrap());
    assert_eq!(bearer(&h), Some("tkd_abc"));
    h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
    assert_eq!(bearer(&h), None);
}
