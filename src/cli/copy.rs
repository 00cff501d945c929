//! `tokend copy-store --to URL`: every grant and credential of the
//! configured database (tokens still sealed, statuses, failures, times)
//! into an empty one: SQLite to PostgreSQL when a host becomes a cluster,
//! and back. The source must be quiet: a SQLite source is locked as for
//! rotate-key (refused while a daemon has it open), a PostgreSQL source is
//! refused while members are connected.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::clock::Clock;
use crate::config::{Config, SecretSearch};
use crate::lockfile::DatabaseLock;
use crate::store::Store;
use crate::store::key::{open_store, postgres_target, read_key};
use crate::store::postgres::{PgStore, PgTarget, is_postgres_url};

/// Grants per read and per transaction of the target.
const BATCH: i64 = 2000;

pub(super) async fn copy_store(
    config: &Config,
    to: &str,
    to_password_file: Option<&Path>,
) -> anyhow::Result<()> {
    let database = config.database_path();
    let _quiet = match config.postgres_url() {
        None if !database.exists() => bail!(
            "no database at {} (storage.database): nothing to copy",
            database.display()
        ),
        None => Some(DatabaseLock::exclusive(&database)?),
        Some(_) => None,
    };
    let (source, origin) = open_store(config, Clock::system()).await?;
    if let Some(target) = postgres_target(config)? {
        let members = PgStore::connected_members(&target).await?;
        if !members.is_empty() {
            source.close().await;
            bail!(
                "{} member(s) of the cluster are connected to {} (from {}): stop tokend on every \
                 host first, so that nothing changes while it is copied",
                members.len(),
                target.location(),
                members.join(", ")
            );
        }
    }
    let key = read_key(origin.path())?;
    let (target, shown) = open_target(to, to_password_file, &key).await?;
    if target.count_grants().await? > 0 {
        target.close().await;
        source.close().await;
        bail!(
            "{shown} already holds grants: copy-store only fills an empty database \
             (create a new one, or drop what it holds first)"
        );
    }
    let (mut after, mut grants, mut credentials) = (i64::MIN, 0usize, 0usize);
    loop {
        let page = source.export_page(after, BATCH).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        grants += page.len();
        credentials += page.iter().map(|g| g.credentials.len()).sum::<usize>();
        target.import_sealed(&page).await.with_context(|| {
            format!(
                "copying into {shown} failed after {} grants; it now holds part of the data: \
                 empty it and run copy-store again",
                grants - page.len()
            )
        })?;
    }
    let copied = target.count_grants().await?;
    target.close().await;
    source.close().await;
    if copied != grants {
        bail!("{shown} holds {copied} grants after the copy, but {grants} were read");
    }
    eprintln!(
        "copied {grants} grants and {credentials} credentials from {} to {shown} (key {}).\n\
         Point storage.database at it (with the same encryption key, {}) and start tokend.",
        source.location(),
        source.key_id(),
        origin.path().display()
    );
    Ok(())
}

/// Opens (creating and migrating) the target with the source's key, and
/// how to name it in messages (never with a password).
async fn open_target(
    to: &str,
    password_file: Option<&Path>,
    key: &crate::store::crypto::MasterKey,
) -> anyhow::Result<(Store, String)> {
    if is_postgres_url(to) {
        let password = password_file
            .map(|p| SecretSearch::from_env().read("--to-password-file", p))
            .transpose()?;
        let target = PgTarget::parse(to, password).map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().replace("storage.database", "--to"))
        })?;
        let shown = target.location();
        let store = PgStore::open(&target, key, Clock::system())
            .await
            .with_context(|| format!("cannot open {shown}"))?;
        return Ok((Store::new(store), shown));
    }
    if password_file.is_some() {
        bail!("--to-password-file is for a PostgreSQL target (--to postgres://...)");
    }
    let path = PathBuf::from(to);
    let shown = path.display().to_string();
    let store = Store::open(&path, key, Clock::system())
        .await
        .with_context(|| format!("cannot open {shown}"))?;
    Ok((store, shown))
}
