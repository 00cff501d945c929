//! Rows as both backends read them (tokens still sealed), and turning them
//! into the model: the access token opened, refresh tokens left sealed
//! unless a refresh needs them. The columns are the same in both schemas;
//! each backend names them in its own SQL. And the full load's middle stage,
//! the same in both: a page decoded on the blocking pool beside the page
//! before going into the cache.

use sqlx::FromRow;

use super::StoreError;
use super::crypto::{Cipher, Field};
use crate::model::{
    AccessToken, CredentialExtras, CredentialView, Extras, GrantId, GrantState, Status,
};

/// A `grants` row as stored (tokens still sealed).
#[derive(FromRow)]
pub(crate) struct GrantRow {
    pub(crate) id: i64,
    pub(crate) provider: String,
    pub(crate) status: String,
    pub(crate) refresh_token: Vec<u8>,
    pub(crate) previous_refresh_token: Option<Vec<u8>>,
    pub(crate) access_token: Option<Vec<u8>>,
    pub(crate) token_type: String,
    pub(crate) scope: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) lifetime_secs: Option<i64>,
    pub(crate) application_calendar_id: Option<String>,
    pub(crate) generation: i64,
    pub(crate) last_refresh_at: Option<i64>,
    pub(crate) next_refresh_at: Option<i64>,
    pub(crate) consecutive_failures: i64,
    pub(crate) last_error: Option<String>,
}

/// A `credentials` row: its id, grant and extras (JSON).
#[derive(FromRow)]
pub(crate) struct CredentialRow {
    pub(crate) id: String,
    pub(crate) grant_id: i64,
    pub(crate) extras: String,
}

/// A credential joined with its grant: what the API shows of it.
#[derive(FromRow)]
pub(crate) struct ViewRow {
    pub(crate) id: String,
    pub(crate) grant_id: i64,
    pub(crate) provider: String,
    pub(crate) status: String,
    pub(crate) scope: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) last_refresh_at: Option<i64>,
    pub(crate) next_refresh_at: Option<i64>,
    pub(crate) consecutive_failures: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) extras: String,
    pub(crate) created_at: i64,
}

/// Opens the access token; the refresh tokens stay sealed.
pub(crate) fn grant_state(cipher: &Cipher, row: GrantRow) -> Result<GrantState, StoreError> {
    let access = match (row.access_token, row.expires_at) {
        (Some(sealed), Some(expires_at)) => {
            let (lifetime_secs, lifetime_issued) =
                AccessToken::lifetime_from_stored(row.lifetime_secs.unwrap_or(0));
            Some(AccessToken {
                token: cipher.open_secret(row.id, Field::AccessToken, &sealed)?,
                token_type: row.token_type,
                expires_at,
                lifetime_secs,
                lifetime_issued,
            })
        }
        _ => None,
    };
    Ok(GrantState {
        id: GrantId(row.id),
        status: parse_status(&row.status)?,
        provider: row.provider,
        access,
        scope: row.scope,
        application_calendar_id: row.application_calendar_id,
        generation: row.generation,
        last_refresh_at: row.last_refresh_at,
        next_refresh_at: row.next_refresh_at,
        consecutive_failures: row.consecutive_failures,
        last_error: row.last_error,
        credentials: Vec::new(),
    })
}

pub(crate) fn credentials_of(
    rows: Vec<CredentialRow>,
) -> Result<Vec<CredentialExtras>, StoreError> {
    rows.into_iter()
        .map(|c| {
            Ok(CredentialExtras {
                extras: parse_extras(&c.extras)?,
                id: c.id,
            })
        })
        .collect()
}

pub(crate) fn parse_extras(text: &str) -> Result<Extras, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("credential extras: {e}")))
}

pub(crate) fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}

pub(crate) fn view_of(row: ViewRow) -> Result<CredentialView, StoreError> {
    Ok(CredentialView {
        status: parse_status(&row.status)?,
        extras: parse_extras(&row.extras)?,
        id: row.id,
        grant_id: GrantId(row.grant_id),
        provider: row.provider,
        scope: row.scope,
        expires_at: row.expires_at,
        last_refresh_at: row.last_refresh_at,
        next_refresh_at: row.next_refresh_at,
        consecutive_failures: row.consecutive_failures,
        last_error: row.last_error,
        created_at: row.created_at,
    })
}

/// Runs `decode` (a page's grants) on the blocking pool while `decoded`
/// (the page before) goes to `each` here; returns what `decode` made. (The
/// pool keeps its threads, so the allocations of one page reuse the memory
/// of the page before.)
pub(crate) async fn decode_beside(
    decode: Option<impl FnOnce() -> Result<Vec<GrantState>, StoreError> + Send + 'static>,
    decoded: Vec<GrantState>,
    each: &mut (dyn FnMut(GrantState) + Send),
) -> Result<Vec<GrantState>, StoreError> {
    let decoding = decode.map(tokio::task::spawn_blocking);
    decoded.into_iter().for_each(&mut *each);
    match decoding {
        None => Ok(Vec::new()),
        Some(decoding) => match decoding.await {
            Ok(grants) => grants,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Corrupt(format!("loading grants: {e}"))),
        },
    }
}
