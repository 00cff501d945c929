//! A page of the start-up load as SQLite hands it over (`load`): one JSON
//! array of records, a record per credential, decoded into grants with
//! their access tokens opened.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::model::{AccessToken, CredentialExtras, Extras, GrantId, GrantState, Status};
use crate::store::StoreError;
use crate::store::crypto::{Cipher, Field};

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

/// Turns one page (a JSON array of records) into grants.
pub(super) fn decode(
    cipher: &Cipher,
    records: &str,
    page_size: usize,
) -> Result<Vec<GrantState>, StoreError> {
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
