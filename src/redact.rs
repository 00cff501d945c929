//! Keeping secrets and caller-sent values out of messages: URLs shown
//! without their credentials, and serde's error messages without the
//! values they quote.
//!
//! A URL in the configuration may carry a password (`postgres://u:p@h/db`)
//! or a token in its query (`webhook_url = "https://h/hook?token=..."`);
//! `check-config` and validation messages show the rest of it. serde says
//! `invalid type: string "1//0abc", expected u64`: the value may be a
//! secret typed into the wrong field, so only the expectation is kept.

use url::Url;

pub const REDACTED: &str = "[REDACTED]";

/// Query and fragment parameters whose names contain one of these carry
/// credentials often enough that their values are never shown.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "secret",
    "key",
    "pass",
    "pwd",
    "sig",
    "auth",
    "code",
    "session",
    "credential",
    "jwt",
];

/// `url` with its userinfo (user and password) and the values of
/// secret-looking query and fragment parameters replaced by `[REDACTED]`.
pub fn url(url: &Url) -> String {
    let text = url.as_str();
    let mut out = String::with_capacity(text.len());
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if !url.username().is_empty() || url.password().is_some() => {
            // In a parsed URL an `@` inside the userinfo is percent-encoded:
            // the first one ends it.
            let (_, after) = rest.split_once('@').unwrap_or(("", rest));
            out.push_str(scheme);
            out.push_str("://");
            out.push_str(REDACTED);
            out.push('@');
            after
        }
        _ => text,
    };
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&params(query));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&params(fragment));
    }
    out
}

/// A string value that is an absolute URL with a host, redacted as [`url()`];
/// `None` for anything else (a path, a plain word).
pub fn url_in(value: &str) -> Option<String> {
    let parsed = Url::parse(value).ok()?;
    parsed.has_host().then(|| url(&parsed))
}

/// `a=1&token=x` with each secret-looking parameter's value redacted.
fn params(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret_name(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn secret_name(name: &str) -> bool {
    let name: String = url::form_urlencoded::parse(name.as_bytes())
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

/// A field path serde reported (`expires_in`, `scope`, `items[0].id`) if it
/// looks like one; keys are the caller's too, and an unknown one may be
/// anything (a token pasted as a key). `?` (no position) is none either.
pub fn field_path(path: &str) -> Option<&str> {
    let plausible = (1..=64).contains(&path.len())
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'))
        && path != ".";
    plausible.then_some(path)
}

/// serde's error `message` without any value it quotes: what was wrong and
/// what is allowed. Field names are kept when they look like field names.
pub fn serde_message(message: &str) -> String {
    for (prefix, say) in [
        ("invalid type: ", "wrong type"),
        ("invalid value: ", "invalid value"),
        ("unknown variant ", "unknown value"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return match rest.rfind(", expected ") {
                Some(i) => format!("{say}, expected {}", &rest[i + ", expected ".len()..]),
                None => say.to_owned(),
            };
        }
    }
    // The `config` crate's own wording for an unknown enum value.
    if let Some(rest) = message.strip_prefix("enum ")
        && let Some((name, _)) = rest.split_once(" does not have variant constructor ")
    {
        return format!("unknown value: not one of the values {name} allows");
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // What follows the name is ours (the fields allowed); the name is
        // the caller's and may hold anything, backticks included.
        let end = rest
            .rfind("`, expected ")
            .or_else(|| rest.rfind("`, there are no fields"))
            .unwrap_or(rest.len());
        let (field, tail) = (&rest[..end], rest.get(end + 1..).unwrap_or(""));
        let field = match field_path(field) {
            Some(field) => format!("unknown field `{field}`"),
            None => "an unknown field".to_owned(),
        };
        return format!("{field}{tail}");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_keep_the_rest() {
        let show = |s: &str| url(&Url::parse(s).unwrap());
        assert_eq!(
            show("postgres://tokend:pw@db.internal:5432/tokend?sslmode=verify-full"),
            "postgres://[REDACTED]@db.internal:5432/tokend?sslmode=verify-full"
        );
        assert_eq!(
            show("https://h.example/hook?token=abc&team=ops&X-Api-Key=k#access_token=t"),
            "https://h.example/hook?token=[REDACTED]&team=ops&X-Api-Key=[REDACTED]#access_token=[REDACTED]"
        );
        assert_eq!(
            show("https://user@h.example/"),
            "https://[REDACTED]@h.example/"
        );
        assert_eq!(show("https://h.example/a?b"), "https://h.example/a?b");
        assert_eq!(url_in("tokend.db"), None);
        assert_eq!(url_in("/var/lib/tokend/tokend.db"), None);
    }

    #[test]
    fn serde_messages_keep_the_expectation_not_the_value() {
        for (message, expected) in [
            (
                "invalid type: string \"s3cret, expected x\", expected u64",
                "wrong type, expected u64",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value, expected u32",
            ),
            (
                "unknown variant `s3cret`, expected `active` or `needs_reauth`",
                "unknown value, expected `active` or `needs_reauth`",
            ),
            (
                "enum AuthMethod does not have variant constructor s3cret",
                "unknown value: not one of the values AuthMethod allows",
            ),
            (
                "unknown field `colour`, expected `provider`",
                "unknown field `colour`, expected `provider`",
            ),
            (
                "unknown field `s3cret token!`, expected `provider`",
                "an unknown field, expected `provider`",
            ),
            (
                "unknown field `a`, expected `b` s3cret`, expected `provider`",
                "an unknown field, expected `provider`",
            ),
            ("missing field `provider`", "missing field `provider`"),
        ] {
            assert_eq!(serde_message(message), expected);
        }
        assert_eq!(field_path("expires_in"), Some("expires_in"));
        assert_eq!(field_path("items[0].id"), Some("items[0].id"));
        for odd in ["", ".", "?", "s3cret token!", "a\"b", &"x".repeat(65)] {
            assert_eq!(field_path(odd), None, "{odd}");
        }
    }
}
