//! The classification table of SPEC §5, one row per test.

use secrecy::ExposeSecret;
use serde_json::json;

use super::*;
use crate::provider::explain::explain_invalid_grant;

const WAIT: Duration = Duration::from_secs(42);

fn classify(status: u16, body: &str) -> ProviderError {
    failure(
        Endpoint::Token,
        status,
        body.as_bytes(),
        WAIT,
        &["s3cr3t-secret", "rt-refresh-1"],
    )
}

#[test]
fn invalid_grant_keeps_the_description() {
    let e = classify(
        400,
        r#"{"error":"invalid_grant","error_description":"code already used"}"#,
    );
    assert_eq!(
        e,
        ProviderError::InvalidGrant {
            description: explain_invalid_grant("code already used".into())
        }
    );
    // Without a description the code itself stands in.
    let e = classify(400, r#"{"error":"invalid_grant"}"#);
    assert_eq!(
        e,
        ProviderError::InvalidGrant {
            description: explain_invalid_grant("invalid_grant".into())
        }
    );
}

#[test]
fn cronofy_unknown_or_used_is_invalid_grant() {
    let body = r#"{"errors":{"code":[{"key":"errors.unknown_or_used","description":"unknown or already used"}]}}"#;
    assert_eq!(
        classify(422, body),
        ProviderError::InvalidGrant {
            description: explain_invalid_grant(
                "code: errors.unknown_or_used: unknown or already used".into()
            )
        }
    );
    // Other validation errors are not a dead grant.
    let body =
        r#"{"errors":{"redirect_uri":[{"key":"errors.required","description":"required"}]}}"#;
    assert!(matches!(
        classify(422, body),
        ProviderError::Protocol { .. }
    ));
}

#[test]
fn invalid_client_on_400_and_401() {
    for status in [400, 401] {
        let e = classify(status, r#"{"error":"invalid_client"}"#);
        assert!(
            matches!(e, ProviderError::InvalidClient { .. }),
            "{status}: {e:?}"
        );
    }
    assert!(matches!(
        classify(401, ""),
        ProviderError::InvalidClient { .. }
    ));
    assert!(matches!(
        classify(401, "<html>nope</html>"),
        ProviderError::InvalidClient { .. }
    ));
}

#[test]
fn rate_limited_carries_the_wait() {
    assert_eq!(
        classify(429, "slow down"),
        ProviderError::RateLimited { retry_after: WAIT }
    );
}

#[test]
fn server_errors_are_transient() {
    for status in [500, 502, 503, 504] {
        assert_eq!(
            classify(status, "{}"),
            ProviderError::Transient {
                reason: format!("HTTP {status}")
            }
        );
    }
}

#[test]
fn unknown_4xx_and_other_codes_are_protocol() {
    assert_eq!(
        classify(404, "not here"),
        ProviderError::Protocol {
            reason: "HTTP 404".into()
        }
    );
    assert_eq!(
        classify(
            400,
            r#"{"error":"unsupported_grant_type","error_description":"nope"}"#
        ),
        ProviderError::Protocol {
            reason: "HTTP 400, error unsupported_grant_type: nope".into()
        }
    );
    assert!(matches!(classify(302, ""), ProviderError::Protocol { .. }));
    // invalid_token means "gone" only for revocation.
    assert!(matches!(
        classify(400, r#"{"error":"invalid_token"}"#),
        ProviderError::Protocol { .. }
    ));
    let revoke = failure(
        Endpoint::Revoke,
        400,
        br#"{"error":"invalid_token"}"#,
        WAIT,
        &[],
    );
    assert!(matches!(revoke, ProviderError::InvalidGrant { .. }));
}

#[test]
fn descriptions_are_scrubbed_and_shortened() {
    let e = classify(
        400,
        r#"{"error":"invalid_grant","error_description":"refresh token rt-refresh-1 unknown for s3cr3t-secret\r\nX-Injected: 1"}"#,
    );
    let ProviderError::InvalidGrant { description } = e else {
        panic!("{e:?}")
    };
    assert_eq!(
        description,
        explain_invalid_grant(
            "refresh token [REDACTED] unknown for [REDACTED]  X-Injected: 1".into()
        )
    );

    let long = "x".repeat(1000);
    let body = json!({"error": "invalid_grant", "error_description": long}).to_string();
    let ProviderError::InvalidGrant { description } = classify(400, &body) else {
        panic!()
    };
    // The provider's text is cut; the hint that follows is ours.
    let (text, hint) = description.split_once(" (").unwrap();
    assert_eq!(text.chars().count(), MAX_DESCRIPTION_CHARS + 1);
    assert!(text.ends_with('…'));
    assert!(hint.contains("sign in again"), "{hint}");
}

#[test]
fn token_response_fields_and_extras() {
    let body = json!({
        "token_type": "Bearer", "access_token": "at-1", "expires_in": 3600,
        "refresh_token": "rt-1", "scope": "read_write", "account_id": "acc_1",
        "sub": "acc_1", "linking_profile": {"provider_name": "google"}, "id_token": "eyJ..."
    });
    let t = token_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(t.access_token.expose_secret(), "at-1");
    assert_eq!(t.token_type, "bearer");
    assert_eq!(t.expires_in, Some(3600));
    assert_eq!(
        t.refresh_token.as_ref().map(|s| s.expose_secret()),
        Some("rt-1")
    );
    assert_eq!(t.scope.as_deref(), Some("read_write"));
    let mut keys: Vec<_> = t.extras.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["account_id", "linking_profile", "sub"]);
}

#[test]
fn token_response_tolerates_missing_optionals() {
    let t = token_response(br#"{"access_token":"at","token_type":"BEARER"}"#).unwrap();
    assert_eq!(t.token_type, "bearer");
    assert_eq!(t.expires_in, None);
    assert!(t.refresh_token.is_none());
    assert!(t.extras.is_empty());
    let t =
        token_response(br#"{"access_token":"at","expires_in":"120","refresh_token":""}"#).unwrap();
    assert_eq!(t.expires_in, Some(120));
    assert_eq!(t.token_type, "bearer");
    assert!(t.refresh_token.is_none());
}

#[test]
fn unusable_2xx_is_protocol() {
    for body in [
        "",
        "not json",
        "[1,2]",
        r#"{"token_type":"bearer"}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":5}"#,
    ] {
        let e = token_response(body.as_bytes()).unwrap_err();
        assert!(matches!(e, ProviderError::Protocol { .. }), "{body}: {e:?}");
    }
}

/// Every form a server may echo a secret in: raw, JSON-escaped (`\/`, `\"`,
/// `\u` in either hex case), percent-encoded (`+` or `%20`, either hex case)
/// and base64 (alone, at any offset in a larger blob, or as in Basic
/// authentication), scrubbed wherever it appears in provider text.
#[test]
fn sanitize_scrubs_every_encoding_of_a_secret() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    let secret = "1//0g SECRET+rt/x=\"é\\";
    let form = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let lower_hex = |s: &str| {
        let mut out = String::new();
        let mut hex = 0u8;
        for c in s.chars() {
            out.push(if hex > 0 { c.to_ascii_lowercase() } else { c });
            hex = if c == '%' { 2 } else { hex.saturating_sub(1) };
        }
        out
    };
    let escape_all = |upper: bool| -> String {
        secret
            .chars()
            .map(|c| match (c.is_ascii_alphanumeric(), upper) {
                (true, _) => c.to_string(),
                (false, true) => format!("\\u{:04X}", c as u32),
                (false, false) => format!("\\u{:04x}", c as u32),
            })
            .collect()
    };
    // base64 of `prefix` + `encoded secret`, and the part of it that only
    // the secret determines (two characters of margin at each end).
    let embedded = |prefix: &str, inner: &str| {
        let all = STANDARD.encode(format!("{prefix}{inner}z"));
        let from = (prefix.len() * 8).div_ceil(6) + 2;
        let to = ((prefix.len() + inner.len()) * 8) / 6 - 2;
        let part = all[from..to].to_owned();
        (all, part)
    };
    let json = serde_json::to_string(secret).unwrap();
    let json = json.trim_matches('"').to_owned();
    let mut encodings: Vec<(String, String)> = [
        secret.to_owned(),
        json.clone(),
        json.replace('/', "\\/"),
        escape_all(false),
        escape_all(true),
        form(secret),
        form(secret).replace('+', "%20"),
        lower_hex(&form(secret)),
        lower_hex(&form(secret).replace('+', "%20")),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ]
    .into_iter()
    .map(|e| (e.clone(), e))
    .collect();
    encodings.push(embedded("x", secret));
    encodings.push(embedded("xy", secret));
    encodings.push(embedded("client id:", secret));
    encodings.push(embedded("client+id:", &form(secret)));
    for (encoded, part) in encodings {
        let out = sanitize(&format!("echo [{encoded}] end"), &[secret]);
        assert!(out.contains("[REDACTED]"), "{encoded} kept: {out}");
        let chars: Vec<char> = part.chars().collect();
        for window in chars.windows(6) {
            let window: String = window.iter().collect();
            assert!(!out.contains(&window), "{window:?} of {encoded} in {out}");
        }
        assert!(out.starts_with("echo [") && out.ends_with("] end"), "{out}");
    }
}
