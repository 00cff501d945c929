//! JSON shapes shared by the API and the CLI.

use serde_json::{Map, Value, json};

use crate::clock::rfc3339;
use crate::store::CredentialView;

/// A credential view (SPEC §4): never a token. Provider extras are merged in
/// at the top level, unchanged; a provider field named like one of ours
/// (`id`, `status`, ...) is dropped rather than allowed to mask it.
pub fn credential_json(v: &CredentialView) -> Value {
    let mut out = match json!({
        "id": v.id,
        "provider": v.provider,
        "status": v.status.as_str(),
        "scope": v.scope,
        "expires_at": v.expires_at.map(rfc3339),
        "last_refresh_at": v.last_refresh_at.map(rfc3339),
        "next_refresh_at": v.next_refresh_at.map(rfc3339),
        "consecutive_failures": v.consecutive_failures,
        "last_error": v.last_error,
    }) {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    };
    merge_extras_under(&mut out, &v.extras);
    Value::Object(out)
}

/// Adds provider extras to `out` without overwriting any field already there.
pub fn merge_extras_under(out: &mut Map<String, Value>, extras: &Map<String, Value>) {
    for (k, val) in extras {
        out.entry(k.clone()).or_insert_with(|| val.clone());
    }
}
