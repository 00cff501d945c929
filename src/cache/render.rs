//! The token response rendered at publish time, up to `expires_in`.
//!
//! An entry keeps the response's values only, each already JSON, one after
//! the other: `"ID""TOKEN""TYPE""EXPIRES_AT"SCOPE` and then the provider's
//! extras as `,"name":value` pairs. The field names, the same in every
//! response, are written in between as the body is put together
//! ([`super::TokenEntry::push_body_prefix`]): they were 70 of the 160 bytes
//! of a typical entry, 64 MB at a million credentials.

use std::num::NonZeroU32;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::CachedAccess;
use crate::clock::rfc3339;
use crate::model::{AccessToken, Extras};

/// Fields of the token response that provider extras may not overwrite.
const TOKEN_FIELDS: &[&str] = &[
    "credential_id",
    "access_token",
    "token_type",
    "expires_at",
    "expires_in",
    "scope",
    "warnings",
];

/// What comes before each value of the text, in order.
pub(super) const NAMES: [&[u8]; 5] = [
    b"{\"credential_id\":",
    b",\"access_token\":",
    b",\"token_type\":",
    b",\"expires_at\":",
    b",\"scope\":",
];

/// The bytes [`NAMES`] add to an entry's text.
pub(super) const NAMES_LEN: usize = {
    let (mut n, mut i) = (0, 0);
    while i < NAMES.len() {
        n += NAMES[i].len();
        i += 1;
    }
    n
};

/// An entry's text and where its values end. The id needs no escaping (the
/// store admits only `[A-Za-z0-9._:@-]`), so it sits verbatim at
/// `1..id_end - 1` and the cache keys its map by that slice.
pub(super) struct Rendered {
    pub text: SecretString,
    pub id_end: u16,
    pub access: Option<CachedAccess>,
    /// Ends of the token type and the expiry (zero without a token).
    pub ends: [u32; 2],
}

pub(super) fn render(
    credential_id: &str,
    access: Option<&AccessToken>,
    scope: Option<&str>,
    extras: &Extras,
) -> Rendered {
    debug_assert!(
        !needs_escape(credential_id) && credential_id.len() < usize::from(u16::MAX) - 2,
        "credential ids are plain (model::valid_credential_id)"
    );
    // Written here, then copied into a block of exactly its size: a shrink
    // in place would keep the whole first guess allocated for every entry.
    let mut text = Zeroizing::new(String::with_capacity(match access {
        Some(a) => 96 + credential_id.len() + a.token.expose_secret().len(),
        None => credential_id.len() + 2,
    }));
    push_json_str(&mut text, credential_id);
    let id_end = text.len() as u16;
    let Some(access) = access else {
        return Rendered {
            text: exact(&text),
            id_end,
            access: None,
            ends: [0; 2],
        };
    };
    let end = |text: &str| u32::try_from(text.len()).expect("an entry is far below 4 GiB");
    push_json_str(&mut text, access.token.expose_secret());
    let token_end = NonZeroU32::new(end(&text)).expect("the token follows the id");
    push_json_str(&mut text, &access.token_type);
    let type_end = end(&text);
    push_json_str(&mut text, &rfc3339(access.expires_at));
    let expires_end = end(&text);
    match scope {
        Some(s) => push_json_str(&mut text, s),
        None => text.push_str("null"),
    }
    for (k, v) in extras {
        if TOKEN_FIELDS.contains(&k.as_str()) {
            continue;
        }
        text.push(',');
        push_json_str(&mut text, k);
        text.push(':');
        text.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    }
    Rendered {
        text: exact(&text),
        id_end,
        access: Some(CachedAccess {
            expires_at: access.expires_at,
            lifetime_secs: access.lifetime_secs.clamp(0, i64::from(u32::MAX)) as u32,
            token_end,
        }),
        ends: [type_end, expires_end],
    }
}

fn exact(text: &str) -> SecretString {
    SecretString::from(Box::<str>::from(text))
}

/// `s` as a JSON string, quotes included.
pub(super) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it.
fn push_json_str(out: &mut String, s: &str) {
    if needs_escape(s) {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// JSON escapes only quotes, backslashes and control characters.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}
