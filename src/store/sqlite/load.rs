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

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::SqliteStore;
use crate::model::{AccessToken, CredentialExtras, Extras, GrantId, GrantState, Status};
use crate::store::StoreError;
use crate::store::crypto::{Cipher, Field};

/// Grants per page: big enough that the per-page costs (a query, a
/// hand-over between threads) vanish, small enough to keep a page in cache.
pub(super) const PAGE: i64 = 2048;

/// One credential of a grant (none: a grant without credentials), as the
/// page query's `json_array` lays it out.
#[derive(Deserialize)]
struct Record<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    /// The sealed access token, hex.
    #[serde(borrow)]
    Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    Option<i64>,
    Option<i64>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    Option<Extras>,
);

/// A page's records, read into a vector sized for a whole page up front
/// (records are large; growing the vector was a tenth of the load's time).
struct Page(usize);

impl<'de> DeserializeSeed<'de> for Page {
    type Value = Vec<Record<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Page {
    type Value = Vec<Record<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of grant records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A page holds PAGE grants, a few more records with linked credentials.
        let mut records = Vec::with_capacity(self.0 + self.0 / 8);
        while let Some(r) = seq.next_element()? {
            records.push(r);
        }
        Ok(records)
    }
}

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

/// Turns one page (a JSON array of records) into grants.
fn decode(cipher: &Cipher, records: &str, page_size: usize) -> Result<Vec<GrantState>, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("loading grants: {e}"));
    let mut json = serde_json::Deserializer::from_str(records);
    let mut records = Page(page_size).deserialize(&mut json).map_err(corrupt)?;
    json.end().map_err(corrupt)?;
    // SQLite aggregates in the join's order; should a plan ever differ,
    // the order the cache is promised is restored here.
    let order = |a: &Record<'_>, b: &Record<'_>| a.0.cmp(&b.0).then_with(|| a.14.cmp(&b.14));
    if !records.is_sorted_by(|a, b| order(a, b).is_le()) {
        records.sort_by(order);
    }
    let mut grants = Vec::with_capacity(page_size);
    let mut current: Option<GrantState> = None;
    for mut r in records {
        if let Some(done) = current.take_if(|g| g.id.0 != r.0) {
            grants.push(done);
        }
        let credential = match (r.14.take(), r.15.take()) {
            (Some(id), Some(extras)) => Some(CredentialExtras {
                id: id.into_owned(),
                extras,
            }),
            _ => None,
        };
        let grant = match &mut current {
            Some(g) => g,
            None => current.insert(cache_state(cipher, r)?),
        };
        grant.credentials.extend(credential);
    }
    grants.extend(current);
    Ok(grants)
}

fn cache_state(cipher: &Cipher, r: Record<'_>) -> Result<GrantState, StoreError> {
    let access = match (r.3, r.6) {
        (Some(sealed), Some(expires_at)) => {
            let sealed = unhex(sealed.as_bytes())
                .ok_or_else(|| StoreError::Corrupt("access token: not hex".into()))?;
            let (lifetime_secs, lifetime_issued) =
                AccessToken::lifetime_from_stored(r.7.unwrap_or(0));
            Some(AccessToken {
                token: cipher.open_secret(r.0, Field::AccessToken, &sealed)?,
                token_type: r.4.into_owned(),
                expires_at,
                lifetime_secs,
                lifetime_issued,
            })
        }
        _ => None,
    };
    let status = Status::parse(&r.2)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown status {:?}", r.2)))?;
    Ok(GrantState {
        id: GrantId(r.0),
        status,
        provider: r.1.into_owned(),
        access,
        scope: r.5.map(Cow::into_owned),
        application_calendar_id: r.8.map(Cow::into_owned),
        generation: r.9,
        last_refresh_at: r.10,
        next_refresh_at: r.11,
        consecutive_failures: r.12,
        last_error: r.13.map(Cow::into_owned),
        credentials: Vec::with_capacity(1),
    })
}

/// The value of each hex digit SQLite's `hex()` writes (upper case; lower
/// case too), `0xff` for anything else.
const HEX: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'A' as usize + i] = 10 + i as u8;
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Hex to bytes, `None` unless `text` is all pairs of hex digits. A table
/// instead of the `hex` crate's comparisons: a quarter of the decoding
/// thread's time went to turning the sealed tokens back into bytes.
fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 2);
    for pair in text.chunks_exact(2) {
        let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        if (high | low) > 0x0f {
            return None;
        }
        out.push(high << 4 | low);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::unhex;

    #[test]
    fn unhex_reads_both_cases_and_refuses_anything_else() {
        assert_eq!(unhex(b"00FFa09B"), Some(vec![0x00, 0xff, 0xa0, 0x9b]));
        assert_eq!(unhex(b""), Some(vec![]));
        for bad in [&b"0"[..], b"0G", b"g0", b" 0", b"0x", b"\xff\xff"] {
            assert_eq!(unhex(bad), None, "{bad:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(hex::encode_upper(&all).as_bytes()), Some(all.clone()));
        assert_eq!(unhex(hex::encode(&all).as_bytes()), Some(all));
    }
}
