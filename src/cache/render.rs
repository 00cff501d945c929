//! The token response rendered at publish time, up to `expires_in`.

use secrecy::{ExposeSecret, SecretString};

use super::CachedAccess;
use crate::clock::rfc3339;
use crate::store::{AccessToken, Extras};

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

/// Renders the token response up to `expires_in`.
pub(super) fn render(
    credential_id: &str,
    access: &AccessToken,
    scope: Option<&str>,
    extras: &Extras,
) -> CachedAccess {
    let mut body = String::with_capacity(256);
    body.push_str("{\"credential_id\":");
    push_json_str(&mut body, credential_id);
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
    CachedAccess {
        expires_at: access.expires_at,
        lifetime_secs: access.lifetime_secs,
        body_prefix: SecretString::from(body),
        token_at,
    }
}

/// `s` as a JSON string, quotes included.
pub(super) fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&json_str(s));
}
