//! Credentials: the ids callers name, the provider extras each one sees,
//! and the view of a credential shown by the API and the CLI (never a token).

use serde_json::{Map, Value, json};

use super::{GrantId, Status};
use crate::clock::{UnixMillis, rfc3339};

/// The provider's extra fields (Cronofy: `account_id`, `sub`, `linking_profile`, ...).
pub type Extras = serde_json::Map<String, serde_json::Value>;

/// A credential of a grant with the extras it sees.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialExtras {
    pub id: String,
    pub extras: Extras,
}

/// What `GET /v1/credentials` shows: never a token.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialView {
    pub id: String,
    pub grant_id: GrantId,
    pub provider: String,
    pub status: Status,
    pub scope: Option<String>,
    pub expires_at: Option<UnixMillis>,
    pub last_refresh_at: Option<UnixMillis>,
    pub next_refresh_at: Option<UnixMillis>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub extras: Extras,
    pub created_at: UnixMillis,
}

impl CredentialView {
    /// The JSON shape of SPEC §4's credential view. Provider extras are
    /// merged in at the top level, unchanged; a provider field named like one
    /// of ours (`id`, `status`, ...) is dropped rather than allowed to mask it.
    pub fn to_json(&self) -> Value {
        let mut out = match json!({
            "id": self.id,
            "provider": self.provider,
            "status": self.status.as_str(),
            "scope": self.scope,
            "expires_at": self.expires_at.map(rfc3339),
            "last_refresh_at": self.last_refresh_at.map(rfc3339),
            "next_refresh_at": self.next_refresh_at.map(rfc3339),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }) {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal is an object"),
        };
        add_missing(&mut out, &self.extras);
        Value::Object(out)
    }
}

/// Adds provider extras to `out` without overwriting any field already there.
fn add_missing(out: &mut Map<String, Value>, extras: &Extras) {
    for (k, val) in extras {
        out.entry(k.clone()).or_insert_with(|| val.clone());
    }
}

/// `[A-Za-z0-9._:@-]{1,128}`: the credential ids SPEC §1 allows.
pub fn valid_credential_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// Merges `update` over `base`, field by field: a field absent from `update` is kept.
pub fn merge_extras(base: &mut Extras, update: &Extras) {
    for (k, v) in update {
        base.insert(k.clone(), v.clone());
    }
}

/// Whether merging `update` over the extras of `credentials` would change
/// any of them (a new field, or a field with another value). A refresh
/// answer usually repeats what the credentials hold already (Cronofy's
/// `account_id` and `sub`): then there is nothing to write. A grant whose
/// credentials are not known here (none given) counts as changed.
pub fn extras_change(credentials: &[CredentialExtras], update: &Extras) -> bool {
    credentials.is_empty()
        || credentials
            .iter()
            .any(|c| update.iter().any(|(k, v)| c.extras.get(k) != Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids() {
        assert!(valid_credential_id("user-42@example.com"));
        assert!(valid_credential_id("a:b.c_d"));
        assert!(valid_credential_id(&"x".repeat(128)));
        assert!(!valid_credential_id(""));
        assert!(!valid_credential_id(&"x".repeat(129)));
        assert!(!valid_credential_id("a/b"));
        assert!(!valid_credential_id("a b"));
        assert!(!valid_credential_id("é"));
    }

    #[test]
    fn merge_keeps_absent_fields() {
        let mut base: Extras =
            serde_json::from_str(r#"{"sub":"acc_1","account_id":"a","linking_profile":{"p":1}}"#)
                .unwrap();
        let update: Extras = serde_json::from_str(r#"{"linking_profile":{"p":2}}"#).unwrap();
        merge_extras(&mut base, &update);
        assert_eq!(base["sub"], "acc_1");
        assert_eq!(base["linking_profile"]["p"], 2);
    }

    #[test]
    fn extras_already_held_change_nothing() {
        let extras = |json: &str| -> Extras { serde_json::from_str(json).unwrap() };
        let creds = [
            CredentialExtras {
                id: "a".into(),
                extras: extras(r#"{"sub":"acc_1","account_id":"x","linking_profile":{"p":1}}"#),
            },
            CredentialExtras {
                id: "b".into(),
                extras: extras(r#"{"sub":"acc_1","account_id":"x"}"#),
            },
        ];
        assert!(!extras_change(
            &creds,
            &extras(r#"{"sub":"acc_1","account_id":"x"}"#)
        ));
        assert!(!extras_change(&creds, &Extras::new()));
        // Another value, a field one credential lacks, a nested difference.
        assert!(extras_change(&creds, &extras(r#"{"account_id":"y"}"#)));
        assert!(extras_change(
            &creds,
            &extras(r#"{"linking_profile":{"p":1}}"#)
        ));
        assert!(extras_change(
            &creds[..1],
            &extras(r#"{"linking_profile":{"p":2}}"#)
        ));
        // Nothing known of the credentials: write.
        assert!(extras_change(&[], &extras(r#"{"sub":"acc_1"}"#)));
    }

    #[test]
    fn a_view_never_lets_extras_mask_its_own_fields() {
        let view = CredentialView {
            id: "alice".into(),
            grant_id: GrantId(1),
            provider: "cronofy".into(),
            status: Status::Active,
            scope: None,
            expires_at: Some(0),
            last_refresh_at: None,
            next_refresh_at: None,
            consecutive_failures: 0,
            last_error: None,
            extras: serde_json::from_str(r#"{"status":"evil","sub":"acc_1"}"#).unwrap(),
            created_at: 0,
        };
        let json = view.to_json();
        assert_eq!(json["status"], "active");
        assert_eq!(json["sub"], "acc_1");
        assert_eq!(json["expires_at"], "1970-01-01T00:00:00Z");
    }
}
