//! The whole database, read once at start to fill the cache.
//!
//! Grants are read a page at a time, in id order, with their credentials,
//! and only the columns the cache needs (never a refresh token). SQLite
//! hands each page over as one JSON array (one row, one value) rather than
//! a row per credential: sqlx copies every value of every row on its own
//! thread and hands rows over one by one through a channel, and at a million
//! rows that hand-over (a wake-up of the other thread per row, and a
//! cross-thread free per value) cost more than reading the database.
//!
//! Three pages are in hand at once, each on a thread of its own: while
//! SQLite reads one, a blocking-pool thread decodes the one before (JSON,
//! hex, opening the sealed access token: more than half the work of a
//! grant), and this task hands the grants of the page before that to the
//! caller (the cache). On two cores the start then waits for the slowest
//! of the three, not for their sum.
//!
//! Memory stays that of three pages however many grants the database holds.

use std::sync::Arc;

use super::SqliteStore;
use super::load_page::decode;
use crate::model::GrantState;
use crate::store::StoreError;

/// Grants per page: big enough that the per-page costs (a query, a
/// hand-over between threads) vanish, small enough to keep a page in cache.
pub(super) const PAGE: i64 = 2048;

/// Reads the database file at `path` once, in large sequential reads, so
/// that SQLite, which asks for one page at a time in index order, finds its
/// pages in the kernel's page cache instead of waiting on the disk for each:
/// after a reboot this takes seconds off loading a large database. The page
/// cache is the kernel's to give back, not this process's memory. Best
/// effort; a missing file (first start) is nothing to read.
///
/// **Only before this process opens the database with SQLite.** Closing any
/// descriptor of the file drops every POSIX lock the process holds on it,
/// SQLite's included ("How To Corrupt An SQLite Database File", 2.2); with
/// its locks gone, another process closing its connection believes itself
/// the last, checkpoints, and deletes the WAL this process still writes to.
pub async fn read_ahead_before_open(path: &std::path::Path) {
    let path = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut chunk = vec![0; 1 << 20];
        while std::io::Read::read(&mut file, &mut chunk)? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "could not read the database ahead"),
        Err(e) => tracing::debug!(error = %e, "could not read the database ahead"),
    }
}

impl SqliteStore {
    /// [`crate::store::Backend::load_each`], `page_size` grants to a query.
    pub(super) async fn load_pages(
        &self,
        page_size: i64,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = sqlx::query_scalar!("SELECT seq FROM change_counter WHERE id = 0")
            .fetch_one(&mut *tx)
            .await?;
        let mut after = i64::MIN;
        let mut page: Option<String> = None;
        let mut decoded = Vec::new();
        loop {
            let cursor = after;
            let next = sqlx::query!(
                r#"SELECT json_group_array(json_array(
                          g.id, g.provider, g.status,
                          iif(g.access_token IS NULL, NULL, hex(g.access_token)),
                          g.token_type, g.scope, g.expires_at, g.lifetime_secs,
                          g.application_calendar_id, g.generation, g.last_refresh_at,
                          g.next_refresh_at, g.consecutive_failures, g.last_error,
                          c.id, json(c.extras))) AS "records!: String",
                          max(g.id) AS "last?: i64"
                   FROM (SELECT id, provider, status, access_token, token_type, scope,
                                expires_at, lifetime_secs, application_calendar_id,
                                generation, last_refresh_at, next_refresh_at,
                                consecutive_failures, last_error
                         FROM grants WHERE id > ?1 ORDER BY id LIMIT ?2) g
                   LEFT JOIN credentials c ON c.grant_id = g.id"#,
                cursor,
                page_size
            )
            .fetch_one(&mut *tx);
            let mut next = std::pin::pin!(next);
            // One poll hands the query to sqlx's thread, which reads the next
            // page while the one before is decoded and handed over below.
            let polled = futures::poll!(next.as_mut());
            decoded = self
                .decode_beside(page.take(), decoded, page_size as usize, each)
                .await?;
            let row = match polled {
                std::task::Poll::Ready(row) => row?,
                std::task::Poll::Pending => next.await?,
            };
            let Some(last) = row.last else { break };
            after = last;
            page = Some(row.records);
        }
        decoded.into_iter().for_each(&mut *each);
        tx.commit().await?;
        Ok(seq)
    }

    /// Decodes `page` on the blocking pool while `decoded` (the page
    /// before) goes to `each` here; returns `page`'s grants.
    async fn decode_beside(
        &self,
        page: Option<String>,
        decoded: Vec<GrantState>,
        page_size: usize,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<Vec<GrantState>, StoreError> {
        let cipher = Arc::clone(&self.cipher);
        let decode = page.map(|records| move || decode(&cipher, &records, page_size));
        crate::store::rows::decode_beside(decode, decoded, each).await
    }

    /// How many grants there are (to size what the load fills).
    pub(super) async fn count(&self) -> Result<usize, StoreError> {
        let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!: i64" FROM grants"#)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as usize)
    }
}
