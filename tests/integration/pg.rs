//! Which database an app's directory uses. The `integration` binary puts a
//! SQLite file in it; the `postgres` binary (the API suite again, and the
//! cluster tests) gives each directory a scratch PostgreSQL database and a
//! key file, shared by every app that uses the directory, dropped when the
//! app that owns the directory goes. Without a PostgreSQL server (and
//! without `TOKEND_REQUIRE_POSTGRES=1`) the `postgres` binary says so and
//! runs on SQLite.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use tokend::store::crypto::MasterKey;
use tokend::store::key::write_new_key;
use tokend::store::postgres::scratch::ScratchDb;

static DATABASES: LazyLock<Mutex<HashMap<PathBuf, Arc<ScratchDb>>>> = LazyLock::new(Mutex::default);

/// The `[storage]` lines for an app whose data lives in `dir`.
pub fn storage_toml(dir: &Path) -> String {
    let sqlite = || format!("database = \"{}\"\n", dir.join("tokend.db").display());
    if !crate::POSTGRES {
        return sqlite();
    }
    let Some(db) = database_for(dir) else {
        return sqlite();
    };
    let key = dir.join("tokend.key");
    if !key.exists() {
        write_new_key(&key, &MasterKey::generate()).unwrap();
    }
    format!(
        "database = \"{}\"\nencryption_key_file = \"{}\"\n",
        db.url(),
        key.display()
    )
}

/// The scratch database of `dir`, created on first use.
pub fn database_for(dir: &Path) -> Option<Arc<ScratchDb>> {
    let mut dbs = DATABASES.lock().unwrap();
    // Directories gone (their apps shut down and never restarted): their
    // databases go too.
    dbs.retain(|d, _| d.exists());
    if let Some(db) = dbs.get(dir) {
        return Some(Arc::clone(db));
    }
    let db = Arc::new(ScratchDb::create_blocking()?);
    dbs.insert(dir.to_path_buf(), Arc::clone(&db));
    Some(db)
}

/// The app owning `dir` is gone with it: drop its database.
pub fn release(dir: &Path) {
    let db = DATABASES.lock().unwrap().remove(dir);
    drop(db);
}
