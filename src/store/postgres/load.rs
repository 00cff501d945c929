//! The full load at start: every grant (access token opened, never a
//! refresh token) with its credentials, a page at a time, in the order the
//! grants' rows lie in the table.
//!
//! A page is a range of the table's blocks (a TID range scan: sequential
//! reads, each block once), then the credentials of that page's grants by
//! their grant index (`grant_id = ANY(...)`). Reading in grant id order
//! instead visits the blocks in random order, each one once per row it
//! holds: at a million grants that cost ten times the CPU (and the reads
//! outgrew PostgreSQL's buffer cache). Neither plan depends on the table's
//! statistics, so a generically planned statement cannot turn into a scan
//! of the whole table per page.
//!
//! A task of its own reads the pages, in one `REPEATABLE READ` snapshot,
//! one page ahead of the caller, who opens the access tokens and fills its
//! cache meanwhile: the server reads while this process works. Memory stays
//! that of a few pages however many grants there are.

use sqlx::FromRow;
use sqlx::postgres::PgPool;
use tokio::sync::mpsc;

use super::PgStore;
use super::feed::snapshot;
use super::rows::{parse_extras, parse_status};
use crate::model::{AccessToken, CredentialExtras, GrantId, GrantState};
use crate::store::StoreError;
use crate::store::crypto::Field;

/// Table blocks per page (about 20 grants to a block).
pub(super) const PAGE: i64 = 256;

/// The highest block number a TID can name: the last page's end.
const LAST_BLOCK: i64 = u32::MAX as i64;

/// A grant's columns the cache needs (never a refresh token).
#[derive(FromRow)]
struct LoadRow {
    id: i64,
    provider: String,
    status: String,
    access_token: Option<Vec<u8>>,
    token_type: String,
    scope: Option<String>,
    expires_at: Option<i64>,
    lifetime_secs: Option<i64>,
    application_calendar_id: Option<String>,
    generation: i64,
    last_refresh_at: Option<i64>,
    next_refresh_at: Option<i64>,
    consecutive_failures: i64,
    last_error: Option<String>,
}

/// One page: grants as they lie in the table, their credentials by grant
/// then id.
struct Page {
    grants: Vec<LoadRow>,
    credentials: Vec<(i64, String, String)>,
}

/// Reads every page (`blocks` table blocks each) into `pages` in one
/// snapshot; the change number it reflects. Stops early (without error)
/// when the receiver is gone.
async fn read_pages(
    pool: PgPool,
    blocks: i64,
    pages: mpsc::Sender<Page>,
) -> Result<i64, StoreError> {
    let (mut tx, seq) = snapshot(&pool).await?;
    // Every row this snapshot sees lies below the table's size now.
    let size: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('grants') / current_setting('block_size')::bigint",
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut start = 0;
    while start < size {
        let end = if start + blocks >= size {
            LAST_BLOCK
        } else {
            start + blocks
        };
        let grants: Vec<LoadRow> = sqlx::query_as(
            "SELECT id, provider, status, access_token, token_type, scope, expires_at,
                    lifetime_secs, application_calendar_id, generation, last_refresh_at,
                    next_refresh_at, consecutive_failures, last_error
             FROM grants
             WHERE ctid >= format('(%s,0)', $1::bigint)::tid
               AND ctid < format('(%s,0)', $2::bigint)::tid",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&mut *tx)
        .await?;
        start = end;
        if grants.is_empty() {
            continue;
        }
        let ids: Vec<i64> = grants.iter().map(|g| g.id).collect();
        let credentials: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT grant_id, id, extras FROM credentials
             WHERE grant_id = ANY($1) ORDER BY grant_id, id",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        if pages
            .send(Page {
                grants,
                credentials,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    tx.commit().await?;
    Ok(seq)
}

impl PgStore {
    /// [`crate::store::Backend::load_each`], `blocks` table blocks a page.
    pub(super) async fn load_pages(
        &self,
        blocks: i64,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<i64, StoreError> {
        // One page waits while the caller works on another.
        let (send, mut pages) = mpsc::channel(1);
        let reader = tokio::spawn(read_pages(self.pool.clone(), blocks, send));
        let mut worked = Ok(());
        while let Some(page) = pages.recv().await {
            worked = self.each_of(page, each);
            if worked.is_err() {
                break;
            }
        }
        // Dropping the receiver stops the reader at its next page.
        drop(pages);
        let read = match reader.await {
            Ok(read) => read,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Corrupt("the load was cancelled".into())),
        };
        worked?;
        read
    }

    /// Calls `each` with every grant of `page`, its credentials attached.
    fn each_of(
        &self,
        page: Page,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<(), StoreError> {
        // Grants in block order, credentials in grant order: take each
        // grant's run of credentials by binary search.
        let credentials = page.credentials;
        for row in page.grants {
            let mut grant = self.cache_state(row)?;
            let first = credentials.partition_point(|c| c.0 < grant.id.0);
            for (_, id, extras) in credentials[first..]
                .iter()
                .take_while(|c| c.0 == grant.id.0)
            {
                grant.credentials.push(CredentialExtras {
                    id: id.clone(),
                    extras: parse_extras(extras)?,
                });
            }
            each(grant);
        }
        Ok(())
    }

    fn cache_state(&self, r: LoadRow) -> Result<GrantState, StoreError> {
        let access = match (r.access_token, r.expires_at) {
            (Some(sealed), Some(expires_at)) => {
                let (lifetime_secs, lifetime_issued) =
                    AccessToken::lifetime_from_stored(r.lifetime_secs.unwrap_or(0));
                Some(AccessToken {
                    token: self.cipher.open_secret(r.id, Field::AccessToken, &sealed)?,
                    token_type: r.token_type,
                    expires_at,
                    lifetime_secs,
                    lifetime_issued,
                })
            }
            _ => None,
        };
        Ok(GrantState {
            id: GrantId(r.id),
            status: parse_status(&r.status)?,
            provider: r.provider,
            access,
            scope: r.scope,
            application_calendar_id: r.application_calendar_id,
            generation: r.generation,
            last_refresh_at: r.last_refresh_at,
            next_refresh_at: r.next_refresh_at,
            consecutive_failures: r.consecutive_failures,
            last_error: r.last_error,
            credentials: Vec::with_capacity(1),
        })
    }
}
