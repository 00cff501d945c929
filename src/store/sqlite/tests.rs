//! The SQLite backend on a real file in a temp dir: the store contract, and
//! what only a file has (what is on disk, file modes, key files).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use futures::FutureExt;
use serde_json::json;

use super::*;
use crate::model::Extras;
use crate::store::contract::{self, Fixture, T0, access, extras, put, store_contract};
use crate::store::key::{KeyError, KeyOrigin, KeySearch, load_key, write_new_key};
use crate::store::{Store, TokenCommit};

/// A fresh database in a temp dir with a new key, on a manual clock.
pub(super) async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let (store, key) = test_store(dir.path(), clock.clone()).await;
    let path = dir.path().join("tokend.db");
    let reopen_clock = clock.clone();
    Fixture {
        store,
        clock,
        key,
        reopen: Box::new(move |key: &MasterKey| {
            let (path, clock) = (path.clone(), reopen_clock.clone());
            let key = MasterKey::from_file_contents(key.to_base64().as_bytes())
                .expect("a key's own base64 reads back");
            async move { Store::open(&path, &key, clock).await }.boxed()
        }),
        _keep: Box::new(dir),
    }
}

store_contract!(fixture);

fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["tokend.db", "tokend.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn tokens_never_reach_the_file_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    let at = access("AT-plaintext-1234567890", T0 + 3_600_000);
    let g = put(
        &store,
        "alice",
        "RT-plaintext-0987654321",
        Some(&at),
        &extras(json!({"sub": "acc_1"})),
    )
    .await;
    let rotated = TokenCommit {
        grant_id: g.grant_id(),
        expected_generation: g.state.generation,
        refresh_token: Some(contract::s("RT-rotated-5555555555")),
        access: access("AT-rotated-6666666666", T0 + 3_600_000),
        scope: None,
        extras: Extras::new(),
        next_refresh_at: T0,
    };
    store.commit_refresh(&rotated).await.unwrap();
    let bytes = raw_bytes(dir.path());
    assert!(
        contains(&bytes, "alice"),
        "sanity: the file holds the id in clear"
    );
    for secret in ["RT-plaintext", "AT-plaintext", "RT-rotated", "AT-rotated"] {
        assert!(!contains(&bytes, secret), "{secret} is in the file");
    }
}

#[tokio::test]
async fn database_wal_and_key_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/tokend.db");
    let (key, origin) = load_key(None, &KeySearch::default(), &db).await.unwrap();
    assert_eq!(
        origin,
        KeyOrigin::Generated(dir.path().join("state/tokend.key"))
    );
    let store = Store::open(&db, &key, Clock::manual(T0)).await.unwrap();
    put(&store, "a", "rt", None, &Extras::new()).await;
    for name in ["tokend.db", "tokend.db-wal", "tokend.db-shm", "tokend.key"] {
        let mode = std::fs::metadata(dir.path().join("state").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
    store.close().await;

    // Second start: the same key is found beside the database.
    let (again, origin) = load_key(None, &KeySearch::default(), &db).await.unwrap();
    assert!(matches!(origin, KeyOrigin::BesideDatabase(_)));
    Store::open(&db, &again, Clock::manual(T0)).await.unwrap();
}

#[tokio::test]
async fn wrong_or_missing_key_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = test_store(dir.path(), Clock::manual(T0)).await;
    put(&store, "a", "rt", None, &Extras::new()).await;
    let stored_id = store.key_id();
    assert!(store.location().ends_with("tokend.db"));
    store.close().await;

    let db = dir.path().join("tokend.db");
    let err = Store::open(&db, &MasterKey::generate(), Clock::manual(T0))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{msg}");
    assert!(
        msg.contains(&stored_id)
            && msg.contains("storage.encryption_key_file")
            && msg.contains(&db.display().to_string()),
        "{msg}"
    );

    // No key anywhere for an existing database: refused, nothing generated.
    let err = load_key(None, &KeySearch::default(), &db)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Missing { .. }), "{err}");
    assert!(err.to_string().contains(&stored_id));
    assert!(!dir.path().join("tokend.key").exists());
}

#[tokio::test]
async fn the_key_is_found_in_a_systemd_credential_store() {
    // A root shell's CLI command on an installed system: the service's key
    // is in /etc/credstore, where LoadCredential= finds it, not beside the
    // database and with no $CREDENTIALS_DIRECTORY.
    let dir = tempfile::tempdir().unwrap();
    let credstore = dir.path().join("credstore");
    std::fs::create_dir(&credstore).unwrap();
    let key = MasterKey::generate();
    write_new_key(&credstore.join("tokend.key"), &key).unwrap();
    let db = dir.path().join("state/tokend.db");
    let search = KeySearch {
        credentials_dir: Some(dir.path().join("no-such-dir")),
        credstores: vec![dir.path().join("empty"), credstore.clone()],
    };
    let (found, origin) = load_key(None, &search, &db).await.unwrap();
    assert_eq!(
        origin,
        KeyOrigin::SystemdCredential(credstore.join("tokend.key"))
    );
    assert_eq!(Cipher::new(&found).key_id(), Cipher::new(&key).key_id());
    assert!(
        !dir.path().join("state/tokend.key").exists(),
        "nothing generated"
    );
}
