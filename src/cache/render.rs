//! The token response rendered at publish time, up to `expires_in`.

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

/// What the response starts with; the credential id follows, in quotes.
pub(super) const ID_START: usize = "{\"credential_id\":\"".len();

/// An entry's text: `{"credential_id":"ID"` and, with a token, the rest of
/// the token response up to `expires_in` (no closing brace). The id needs no
/// escaping (the store admits only `[A-Za-z0-9._:@-]`), so it sits verbatim
/// at `ID_START..id_end` and the cache keys its map by that slice.
pub(super) struct Rendered {
    pub text: SecretString,
    pub id_end: u16,
    pub access: Option<CachedAccess>,
}

pub(super) fn render(
    credential_id: &str,
    access: Option<&AccessToken>,
    scope: Option<&str>,
    extras: &Extras,
) -> Rendered {
    debug_assert!(
        !needs_escape(credential_id) && credential_id.len() < usize::from(u16::MAX) - ID_START,
        "credential ids are plain (model::valid_credential_id)"
    );
    // Written here, then copied into a block of exactly its size: a shrink
    // in place would keep the whole first guess allocated for every entry.
    let mut body = Zeroizing::new(String::with_capacity(match access {
        Some(a) => 256 + credential_id.len() + a.token.expose_secret().len(),
        None => ID_START + credential_id.len() + 1,
    }));
    body.push_str("{\"credential_id\":");
    push_json_str(&mut body, credential_id);
    let id_end = (body.len() - 1) as u16;
    let Some(access) = access else {
        return Rendered {
            text: exact(&body),
            id_end,
            access: None,
        };
    };
    body.push_str(",\"access_token\":");
    let start = body.len();
    push_json_str(&mut body, access.token.expose_secret());
    let token_at = (start as u32, body.len() as u32);
    body.push_str(",\"token_type\":");
    push_json_str(&mut body, &access.token_type);
    body.push_str(",\"expires_at\":");
    push_json_str(&mut body, &rfc3339(access.expires_at));
    body.push_str(",\"scope\":");
    match scope {
        Some(s) => push_json_str(&mut body, s),
        None => body.push_str("null"),
    }
    for (k, v) in extras {
        if TOKEN_FIELDS.contains(&k.as_str()) {
            continue;
        }
        body.push(',');
        push_json_str(&mut body, k);
        body.push(':');
        body.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    }
    Rendered {
        text: exact(&body),
        id_end,
        access: Some(CachedAccess {
            expires_at: access.expires_at,
            lifetime_secs: access.lifetime_secs,
            token_at,
        }),
    }
}

fn exact(body: &str) -> SecretString {
    SecretString::from(Box::<str>::from(body))
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
