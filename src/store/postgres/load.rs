//! The full load at start: every grant (access token opened, never a
//! refresh token) with its credentials, in one `REPEATABLE READ` snapshot,
//! so that the change number it returns is exactly what the grants reflect.
//!
//! Both tables are read whole, each once, sequentially and in binary COPY
//! format (`binary`): first every credential, kept by grant
//! (`load_credentials`), then the grants, in the order their rows lie in the
//! table. Reading grants in id order visits the table's blocks in random
//! order, each one once per row it holds; looking up credentials a page of
//! grants at a time costs an index descent per grant; a query's rows cost
//! sqlx a `PgRow` each and a lookup per column by name. At a million grants
//! each of these cost seconds.
//!
//! Three stages run at once, on different threads, as in the SQLite load: a
//! task reads the COPY a page of rows ahead; a blocking-pool thread decodes
//! the page before (the rows, their credentials, opening the sealed access
//! tokens: the heaviest stage); this task hands the grants of the page before
//! that to the caller (the cache). On two cores the start waits for the
//! slowest stage, not for their sum. Memory stays that of the credentials
//! and a few pages however many grants there are.

use std::sync::Arc;

use futures::TryStreamExt;
use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use tokio::sync::{mpsc, oneshot};

use super::PgStore;
use super::binary::{Cursor, past_header};
use super::feed::{SNAPSHOT, change_seq};
use super::load_credentials::Credentials;
use super::rows::parse_status;
use crate::model::{AccessToken, GrantId, GrantState};
use crate::store::StoreError;
use crate::store::crypto::{Cipher, Field};

/// Rows of the grants table to a page: big enough that the hand-over of a
/// page between threads vanishes, small enough to stay in the CPU's cache.
pub(super) const PAGE: usize = 2048;

/// Every credential (its grant first). The casts are no-ops that state the
/// binary forms `load_credentials` reads.
const CREDENTIALS: &str = "COPY (SELECT grant_id::bigint, id::text, extras::text
                                 FROM credentials) TO STDOUT (FORMAT binary)";

/// Every grant's columns the cache needs, in [`decode`]'s order.
const GRANTS: &str = "COPY (SELECT id::bigint, provider::text, status::text,
                                   access_token::bytea, token_type::text, scope::text,
                                   expires_at::bigint, lifetime_secs::bigint,
                                   application_calendar_id::text, generation::bigint,
                                   last_refresh_at::bigint, next_refresh_at::bigint,
                                   consecutive_failures::bigint, last_error::text
                            FROM grants) TO STDOUT (FORMAT binary)";

/// Fields of a [`GRANTS`] row.
const GRANT_FIELDS: u16 = 14;

/// Rows of the grants COPY as they arrived, past its header.
struct Page(Vec<u8>);

/// Reads the credentials (sent on `credentials`) and then the grants, a page
/// of `rows` at a time, into `pages`, in one snapshot; the change number it
/// reflects, `None` if a receiver went away first.
async fn read(
    conn: &mut PoolConnection<Postgres>,
    rows: usize,
    credentials: oneshot::Sender<Credentials>,
    pages: mpsc::Sender<Page>,
) -> Result<Option<i64>, StoreError> {
    let mut tx = conn.begin_with(SNAPSHOT).await?;
    let seq = change_seq(&mut *tx).await?;
    let estimate: i64 = sqlx::query_scalar(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = 'credentials'::regclass",
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut all = Credentials::with_capacity(usize::try_from(estimate).unwrap_or(0));
    let mut copy = tx.copy_out_raw(CREDENTIALS).await?;
    let mut header = true;
    while let Some(data) = copy.try_next().await? {
        all.add(skip_header(&data, &mut header)?)?;
    }
    drop(copy);
    if credentials.send(all.finish()).is_err() {
        return Ok(None);
    }
    // PostgreSQL sends a COPY's rows a message each (the header comes with
    // the first): a page ends at a row's end.
    let mut copy = tx.copy_out_raw(GRANTS).await?;
    let (mut page, mut n, mut header) = (Vec::new(), 0, true);
    while let Some(data) = copy.try_next().await? {
        page.extend_from_slice(skip_header(&data, &mut header)?);
        n += 1;
        if n == rows {
            let size = page.len();
            let full = std::mem::replace(&mut page, Vec::with_capacity(size));
            if pages.send(Page(full)).await.is_err() {
                return Ok(None);
            }
            n = 0;
        }
    }
    drop(copy);
    if !page.is_empty() && pages.send(Page(page)).await.is_err() {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(seq))
}

/// `data` past the COPY's header if it is the first message (`first`).
fn skip_header<'a>(data: &'a [u8], first: &mut bool) -> Result<&'a [u8], StoreError> {
    if !std::mem::take(first) {
        return Ok(data);
    }
    past_header(data)
}

impl PgStore {
    /// [`crate::store::Backend::load_each`], `rows` grants to a page.
    pub(super) async fn load_pages(
        &self,
        rows: usize,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<i64, StoreError> {
        let (send_credentials, credentials) = oneshot::channel();
        // One page waits while another is decoded and a third handed over.
        let (send, mut pages) = mpsc::channel(1);
        let mut conn = self.pool.acquire().await?;
        let reader = tokio::spawn(async move {
            let read = read(&mut conn, rows, send_credentials, send).await;
            // Stopped inside a COPY, the connection cannot serve anything
            // else until the server has sent the rest: it is closed instead.
            if !matches!(read, Ok(Some(_))) {
                conn.close_on_drop();
            }
            read
        });
        let mut worked = Ok(());
        if let Ok(credentials) = credentials.await {
            let credentials = Arc::new(credentials);
            let mut decoded = Vec::new();
            loop {
                let page = pages.recv().await;
                let last = page.is_none();
                match self.decode_beside(page, decoded, &credentials, each).await {
                    Ok(next) => decoded = next,
                    Err(e) => {
                        worked = Err(e);
                        break;
                    }
                }
                if last {
                    break;
                }
            }
        }
        // Dropping the receivers stops the reader at its next page.
        drop(pages);
        let read = match reader.await {
            Ok(read) => read,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Corrupt("the load was cancelled".into())),
        };
        worked?;
        read?.ok_or_else(|| StoreError::Corrupt("the load stopped early".into()))
    }

    /// Decodes `page` on the blocking pool while `decoded` (the page
    /// before) goes to `each` here; returns `page`'s grants.
    async fn decode_beside(
        &self,
        page: Option<Page>,
        decoded: Vec<GrantState>,
        credentials: &Arc<Credentials>,
        each: &mut (dyn FnMut(GrantState) + Send),
    ) -> Result<Vec<GrantState>, StoreError> {
        let (cipher, credentials) = (Arc::clone(&self.cipher), Arc::clone(credentials));
        let decode = page.map(|page| move || decode(&cipher, &credentials, &page));
        crate::store::rows::decode_beside(decode, decoded, each).await
    }
}

/// The grants of one page, their credentials attached.
fn decode(
    cipher: &Cipher,
    credentials: &Credentials,
    page: &Page,
) -> Result<Vec<GrantState>, StoreError> {
    let mut grants = Vec::with_capacity(PAGE);
    let mut rows = Cursor(&page.0);
    while rows.row(GRANT_FIELDS)? {
        let id = rows.int8()?;
        let provider = rows.text()?.to_owned();
        let status = parse_status(rows.text()?)?;
        let sealed = rows.field()?;
        let token_type = rows.text()?;
        let scope = rows.text_opt()?.map(str::to_owned);
        let expires_at = rows.int8_opt()?;
        let lifetime = rows.int8_opt()?;
        let access = match (sealed, expires_at) {
            (Some(sealed), Some(expires_at)) => {
                let (lifetime_secs, lifetime_issued) =
                    AccessToken::lifetime_from_stored(lifetime.unwrap_or(0));
                Some(AccessToken {
                    token: cipher.open_secret(id, Field::AccessToken, sealed)?,
                    token_type: token_type.to_owned(),
                    expires_at,
                    lifetime_secs,
                    lifetime_issued,
                })
            }
            _ => None,
        };
        grants.push(GrantState {
            id: GrantId(id),
            status,
            provider,
            access,
            scope,
            application_calendar_id: rows.text_opt()?.map(str::to_owned),
            generation: rows.int8()?,
            last_refresh_at: rows.int8_opt()?,
            next_refresh_at: rows.int8_opt()?,
            consecutive_failures: rows.int8()?,
            last_error: rows.text_opt()?.map(str::to_owned),
            credentials: credentials.of(id)?,
        });
    }
    Ok(grants)
}
