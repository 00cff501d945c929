//! The rules for a `[providers.NAME]` table: its name, the keys its kind
//! takes, its endpoints, its client credentials, limits and issuer (see
//! `validate` for the whole configuration and the rules for URLs).

use url::Url;

use super::validate::{url_problems, valid_table_name};
use super::{ProviderConfig, ProviderKind};

/// Every rule the provider table `name` breaks, each naming its key.
pub(super) fn provider_problems(name: &str, c: &ProviderConfig, p: &mut Vec<String>) {
    let key = |k: &str| format!("providers.{name}.{k}");
    if !valid_table_name(name) {
        p.push(format!(
            "providers.{name}: a provider name must match [a-z0-9][a-z0-9_-]*"
        ));
    }
    let foreign: &[(&str, bool)] = match c.kind {
        ProviderKind::Cronofy => &[
            ("token_url", c.token_url.is_some()),
            ("revocation_url", c.revocation_url.is_some()),
            ("authorization_url", c.authorization_url.is_some()),
        ],
        ProviderKind::Oauth2 => &[
            ("data_center", c.data_center.is_some()),
            ("app_base_url", c.app_base_url.is_some()),
        ],
    };
    for (field, set) in foreign {
        if *set {
            p.push(format!(
                "{} does not apply to kind = \"{}\"",
                key(field),
                kind_name(c.kind)
            ));
        }
    }
    if c.kind == ProviderKind::Oauth2 && c.token_url.is_none() {
        p.push(format!(
            "{} is required for kind = \"oauth2\"",
            key("token_url")
        ));
    }
    for (field, url) in [
        ("api_base_url", &c.api_base_url),
        ("app_base_url", &c.app_base_url),
        ("token_url", &c.token_url),
        ("revocation_url", &c.revocation_url),
        ("authorization_url", &c.authorization_url),
    ] {
        if let Some(url) = url {
            url_problems(&key(field), url, p);
        }
    }
    if c.client_id.trim().is_empty() {
        p.push(format!("{} must not be empty", key("client_id")));
    }
    match (&c.client_secret, &c.client_secret_file) {
        (Some(_), Some(_)) => p.push(format!(
            "{} and {} are both set; keep one",
            key("client_secret"),
            key("client_secret_file")
        )),
        (None, None) => p.push(format!(
            "{} (or {}) is required",
            key("client_secret"),
            key("client_secret_file")
        )),
        _ => {}
    }
    for (i, uri) in c.redirect_uris.iter().enumerate() {
        if Url::parse(uri).is_err() {
            p.push(format!(
                "{}[{i}] is not an absolute URL",
                key("redirect_uris")
            ));
        }
    }
    if c.max_requests_per_minute == 0 {
        p.push(format!(
            "{} must be at least 1",
            key("max_requests_per_minute")
        ));
    }
    if c.burst == 0 {
        p.push(format!("{} must be at least 1", key("burst")));
    }
    if !(c.refresh_share > 0.0 && c.refresh_share <= 1.0) {
        p.push(format!(
            "{} must be in (0, 1], got {}: the share of max_requests_per_minute that \
             background refreshes may use (0.5 leaves half for token requests and your own calls)",
            key("refresh_share"),
            c.refresh_share
        ));
    }
    if c.request_timeout_secs == 0 {
        p.push(format!(
            "{} must be at least 1",
            key("request_timeout_secs")
        ));
    }
    if let Some(issuer) = &c.issuer {
        issuer_problems(&key("issuer"), issuer, p);
    }
}

/// RFC 8414 §2: an issuer identifier is an https URL (here also http to a
/// loopback address, for tests) with no query and no fragment.
fn issuer_problems(key: &str, issuer: &str, p: &mut Vec<String>) {
    match Url::parse(issuer) {
        Ok(url) if url.query().is_some() || url.fragment().is_some() => p.push(format!(
            "{key} {issuer:?} must have no query or fragment (an RFC 8414 issuer identifier)"
        )),
        Ok(url) => url_problems(key, &url, p),
        Err(_) => p.push(format!(
            "{key} {issuer:?} is not an absolute URL; use the issuer identifier from the server's metadata, e.g. \"https://accounts.example.com\""
        )),
    }
}

fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Cronofy => "cronofy",
        ProviderKind::Oauth2 => "oauth2",
    }
}
