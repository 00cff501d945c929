//! From an HTTP answer to a [`TokenResponse`] or a [`ProviderError`]
//! class (SPEC §5). Pure functions: the unit tests below are the table.
//!
//! Provider text (`error_description`) is kept because operators need it,
//! but it is shortened, stripped of control characters and scrubbed of every
//! secret the request carried: some servers echo the token they refused.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::explain::explain_invalid_grant;
use super::{ProviderError, TokenResponse};

/// Longest provider description we keep, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Which call an answer belongs to: the same code means different things at
/// different endpoints, and logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    Revoke,
    ApplicationCalendar,
}

impl Endpoint {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Revoke => "revoke",
            Endpoint::ApplicationCalendar => "application_calendar",
        }
    }
}

/// Classifies an answer that is not a 2xx. `retry_after` is the already
/// parsed `Retry-After` (only used for 429); `secrets` are scrubbed from
/// any text kept.
pub(crate) fn failure(
    endpoint: Endpoint,
    status: u16,
    body: &[u8],
    retry_after: Duration,
    secrets: &[&str],
) -> ProviderError {
    if status == 429 {
        return ProviderError::RateLimited { retry_after };
    }
    if status >= 500 {
        return ProviderError::Transient {
            reason: format!("HTTP {status}"),
        };
    }
    let json: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .map(|s| sanitize(s, secrets))
    };
    let code = field("error");
    let description =
        || field("error_description").unwrap_or_else(|| code.clone().unwrap_or_default());
    // At the token endpoint a dead grant needs a person: say what to do.
    let dead = |description: String| ProviderError::InvalidGrant {
        description: match endpoint {
            Endpoint::Revoke => description,
            _ => explain_invalid_grant(description),
        },
    };
    if (400..500).contains(&status) {
        match code.as_deref() {
            Some("invalid_grant") => return dead(description()),
            // RFC 7009 §2.2.1 answers an unknown token with 200, but some
            // servers (Google) say 400 invalid_token: the token is gone either way.
            Some("invalid_token") if endpoint == Endpoint::Revoke => {
                return ProviderError::InvalidGrant {
                    description: description(),
                };
            }
            Some("invalid_client") if status == 400 || status == 401 => {
                return ProviderError::InvalidClient {
                    description: description(),
                };
            }
            // The token endpoint only answers 401 about client authentication
            // (RFC 6749 §5.2), even when a server forgets the error code.
            None if status == 401 => {
                return ProviderError::InvalidClient {
                    description: "HTTP 401 without an error code".into(),
                };
            }
            _ => {}
        }
        if let Some(description) = json
            .as_ref()
            .and_then(|m| cronofy_unknown_or_used(m, secrets))
        {
            return dead(description);
        }
    }
    let reason = match (code, field("error_description")) {
        (Some(code), Some(d)) => format!("HTTP {status}, error {code}: {d}"),
        (Some(code), None) => format!("HTTP {status}, error {code}"),
        _ => format!("HTTP {status}"),
    };
    ProviderError::Protocol { reason }
}

/// Cronofy's validation shape, `{"errors": {"code": [{"key":
/// "errors.unknown_or_used", "description": ...}]}}`: the code is unknown or
/// was used already (its FAQ), which is `invalid_grant` by another name.
fn cronofy_unknown_or_used(body: &Map<String, Value>, secrets: &[&str]) -> Option<String> {
    let errors = body.get("errors")?.as_object()?;
    errors.iter().find_map(|(field, list)| {
        list.as_array()?.iter().find_map(|entry| {
            let key = entry.get("key")?.as_str()?;
            (key == "errors.unknown_or_used").then(|| {
                let text = entry
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or(key);
                sanitize(&format!("{field}: {key}: {text}"), secrets)
            })
        })
    })
}

/// Reads a 2xx token answer (RFC 6749 §5.1; Cronofy adds extras).
pub(crate) fn token_response(body: &[u8]) -> Result<TokenResponse, ProviderError> {
    let mut map: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(protocol("token answer is JSON but not an object")),
        // serde_json's message names a line and column, never the content.
        Err(e) => return Err(protocol(&format!("token answer is not JSON ({e})"))),
    };
    let access_token = match map.remove("access_token") {
        Some(Value::String(s)) if !s.is_empty() => SecretString::from(s),
        _ => return Err(protocol("2xx answer without an access_token")),
    };
    // Missing token_type: RFC 6749 requires it, but every server we know of
    // issues bearer tokens, and refusing a working token helps nobody.
    let token_type = match map.remove("token_type") {
        Some(Value::String(s)) if !s.is_empty() => s.to_ascii_lowercase(),
        _ => "bearer".to_owned(),
    };
    let expires_in = map.remove("expires_in").and_then(|v| match v {
        Value::Number(n) => n.as_u64(),
        // Some servers (older Azure AD) send the number as a string.
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let refresh_token = match map.remove("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => Some(SecretString::from(s)),
        _ => None,
    };
    let scope = match map.remove("scope") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    // An OpenID Connect id_token is a credential of its own: credential views
    // show extras, so it must not become one.
    map.remove("id_token");
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        scope,
        extras: map,
    })
}

/// A 2xx without a JSON body where one was required, or whatever else
/// `token_response` refused: already the right class.
fn protocol(reason: &str) -> ProviderError {
    ProviderError::Protocol {
        reason: reason.to_owned(),
    }
}

/// Shortens provider text, drops control characters (log injection) and
/// replaces every secret of the request, in every encoding it may have been
/// echoed in ([`scrub`]), with `[REDACTED]`.
pub(crate) fn sanitize(text: &str, secrets: &[&str]) -> String {
    let secrets: Vec<&str> = secrets.iter().copied().filter(|s| s.len() >= 4).collect();
    let text = scrub::scrub(text, &secrets);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DESCRIPTION_CHARS)
        .collect();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        out.push('…');
    }
    out
}

#[path = "scrub.rs"]
mod scrub;

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
