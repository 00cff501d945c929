//! The rules every value must satisfy. Each problem names the key and the rule,
//! e.g. `refresh.lead_fraction must be in (0, 0.5], got 0.7`.

use url::Url;

use super::Config;
use super::provider_rules::provider_problems;
use crate::redact;

/// The longest lifetime tokend believes (366 days): tokens are refreshed
/// at least this often, and expiry arithmetic stays far from overflow.
const MAX_LIFETIME_SECS: u64 = 366 * 86_400;
/// A hand-out that waits longer than this for a refresh is no hand-out.
const MAX_HANDOUT_WAIT_MS: u64 = 60_000;

impl Config {
    /// Every rule the configuration breaks; empty when it is valid.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.server_problems(&mut p);
        self.refresh_problems(&mut p);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(format!("log.level is not a valid filter directive ({e})"));
        }
        if self.storage.database.as_os_str().is_empty() {
            p.push("storage.database must not be empty".into());
        }
        match self.postgres_url() {
            Some(url) => {
                if let Err(e) = crate::store::postgres::PgTarget::parse(url, None) {
                    p.push(e.to_string());
                }
            }
            None if self.storage.database_password_file.is_some() => p.push(
                "storage.database_password_file is for a PostgreSQL database: set storage.database \
                 to a postgres:// URL, or leave the password file empty"
                    .into(),
            ),
            None => {}
        }
        for (name, provider) in &self.providers {
            provider_problems(name, provider, &mut p);
        }
        self.client_problems(&mut p);
        self.notify_problems(&mut p);
        p
    }

    fn refresh_problems(&self, p: &mut Vec<String>) {
        let r = &self.refresh;
        if !(r.lead_fraction > 0.0 && r.lead_fraction <= 0.5) {
            p.push(format!(
                "refresh.lead_fraction must be in (0, 0.5], got {}",
                r.lead_fraction
            ));
        }
        if !(r.jitter_fraction >= 0.0 && r.jitter_fraction < 0.5) {
            p.push(format!(
                "refresh.jitter_fraction must be in [0, 0.5), got {}",
                r.jitter_fraction
            ));
        }
        if !(60..=MAX_LIFETIME_SECS).contains(&r.max_lifetime_secs) {
            p.push(format!(
                "refresh.max_lifetime_secs must be 60 to {MAX_LIFETIME_SECS} (a year), got {}",
                r.max_lifetime_secs
            ));
        }
        if r.handout_margin_ms > r.min_lead_secs.saturating_mul(1000) {
            p.push(format!(
                "refresh.handout_margin_ms must be at most refresh.min_lead_secs ({} s), so that tokens are refreshed before they stop being handed out; got {}",
                r.min_lead_secs, r.handout_margin_ms
            ));
        }
        if r.handout_wait_ms > MAX_HANDOUT_WAIT_MS {
            p.push(format!(
                "refresh.handout_wait_ms must be at most {MAX_HANDOUT_WAIT_MS} (a hand-out is a fast call), got {}",
                r.handout_wait_ms
            ));
        }
        if r.max_concurrency == 0 {
            p.push("refresh.max_concurrency must be at least 1".into());
        }
        if !(r.retry_initial_secs > 0.0 && r.retry_initial_secs.is_finite()) {
            p.push(format!(
                "refresh.retry_initial_secs must be greater than 0, got {}",
                r.retry_initial_secs
            ));
        }
        if !(r.retry_max_secs >= r.retry_initial_secs && r.retry_max_secs.is_finite()) {
            p.push(format!(
                "refresh.retry_max_secs must be at least refresh.retry_initial_secs, got {}",
                r.retry_max_secs
            ));
        }
    }

    fn client_problems(&self, p: &mut Vec<String>) {
        for (name, client) in &self.clients {
            if !valid_table_name(name) {
                p.push(format!(
                    "clients.{name}: a client name must match [a-z0-9][a-z0-9_-]*"
                ));
            }
            match &client.key_sha256 {
                Some(hash) if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    p.push(format!(
                        "clients.{name}.key_sha256 must be 64 hex digits (run `tokend client-key {name}`)"
                    ));
                }
                // The old example's placeholder: a client nobody holds a key to.
                Some(hash) if hash.bytes().all(|b| b == b'0') => p.push(format!(
                    "clients.{name}.key_sha256 is all zeros, a placeholder: run `tokend client-key {name}`"
                )),
                None if client.unix_uids.is_empty() => p.push(format!(
                    "clients.{name} needs key_sha256 or unix_uids (run `tokend client-key {name}`)"
                )),
                _ => {}
            }
            if !client.unix_uids.is_empty() && self.server.unix_socket.is_none() {
                p.push(format!(
                    "clients.{name}.unix_uids needs server.unix_socket to be set"
                ));
            }
            for pattern in &client.credentials {
                let chars_ok = pattern.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'_' | b':' | b'@' | b'-' | b'*' | b'?')
                });
                if pattern.is_empty() || pattern.len() > 128 || !chars_ok {
                    p.push(format!(
                        "clients.{name}.credentials pattern {pattern:?} must be 1 to 128 of A-Z a-z 0-9 . _ : @ - and the wildcards * ?"
                    ));
                }
            }
        }
    }

    fn notify_problems(&self, p: &mut Vec<String>) {
        let n = &self.notify;
        if let Some(url) = &n.webhook_url {
            url_problems("notify.webhook_url", url, p);
            if !is_loopback_host(url) && !n.webhook_allow_remote {
                p.push(format!(
                    "notify.webhook_url {} is not a loopback address; set notify.webhook_allow_remote = true to allow it",
                    redact::url(url)
                ));
            }
        }
        if n.webhook_secret_file.is_some() && n.webhook_url.is_none() {
            p.push("notify.webhook_secret_file is set but notify.webhook_url is empty".into());
        }
        if n.failing_after == 0 {
            p.push("notify.failing_after must be at least 1".into());
        }
    }
}

/// Provider endpoints carry client secrets and tokens: https, or plain http
/// only to a loopback address (tests, a local proxy).
pub(super) fn url_problems(key: &str, url: &Url, p: &mut Vec<String>) {
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(url) => {}
        "http" => p.push(format!(
            "{key} must use https unless it points at a loopback address, got {}",
            redact::url(url)
        )),
        other => p.push(format!(
            "{key} must be an http(s) URL, got scheme {other:?}"
        )),
    }
}

pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Table names double as environment-variable segments (`TOKEND__PROVIDERS__NAME__KEY`),
/// which are lower-cased: so names are lower case and never contain `__`.
pub(crate) fn valid_table_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        && !name.contains("__")
}
