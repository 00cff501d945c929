//! The one way from a provider's answer to a stored token: the access token
//! with its expiry, and when the grant is due again.

use crate::clock::UnixMillis;
use crate::config::RefreshConfig;
use crate::model::AccessToken;
use crate::provider::TokenResponse;

use super::schedule::due_at;

/// The access token of `response` to a request sent at `sent` (the server
/// issued it later, so its expiry is no later than this one). A provider's lifetime
/// counts as `refresh.max_lifetime_secs` at most (and when it sends none):
/// a bogus one must neither overflow nor put the refresh off for ever. Any
/// lifetime is at least a second.
pub(super) fn access_token(
    response: &TokenResponse,
    sent: UnixMillis,
    cfg: &RefreshConfig,
) -> AccessToken {
    let lifetime = response
        .expires_in
        .map_or(cfg.max_lifetime_secs, |e| e.min(cfg.max_lifetime_secs))
        .clamp(1, i64::MAX as u64 / 1000) as i64;
    AccessToken {
        token: response.access_token.clone(),
        token_type: response.token_type.clone(),
        expires_at: sent.saturating_add(lifetime * 1000),
        lifetime_secs: lifetime,
        lifetime_issued: response.expires_in.is_some(),
    }
}

/// When a grant holding `access` is due for its next refresh (with jitter).
pub(super) fn next_due(access: &AccessToken, cfg: &RefreshConfig) -> UnixMillis {
    due_at(access.expires_at, access.lifetime_secs, cfg, rand::random())
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::model::Extras;

    fn response(expires_in: Option<u64>) -> TokenResponse {
        TokenResponse {
            access_token: SecretString::from("at".to_owned()),
            token_type: "bearer".into(),
            expires_in,
            refresh_token: None,
            scope: None,
            extras: Extras::new(),
        }
    }

    #[test]
    fn lifetimes_come_from_the_answer_or_the_configured_maximum() {
        let cfg = RefreshConfig {
            lead_fraction: 0.2,
            min_lead_secs: 300,
            jitter_fraction: 0.05,
            max_lifetime_secs: 7200,
            max_concurrency: 16,
            retry_initial_secs: 1.0,
            retry_max_secs: 300.0,
            force_refresh_min_interval_secs: 10,
            handout_margin_ms: 1000,
            handout_wait_ms: 2000,
        };
        let a = access_token(&response(Some(3600)), 1_000, &cfg);
        assert_eq!((a.expires_at, a.lifetime_secs), (3_601_000, 3600));
        assert_eq!(a.token.expose_secret(), "at");
        let b = access_token(&response(None), 1_000, &cfg);
        assert_eq!(b.lifetime_secs, 7200);
        let c = access_token(&response(Some(0)), 1_000, &cfg);
        assert_eq!(c.lifetime_secs, 1, "at least a second");
        let d = access_token(&response(Some(u64::MAX)), 1_000, &cfg);
        assert_eq!(d.lifetime_secs, 7200, "at most max_lifetime_secs");
        assert!(next_due(&a, &cfg) < a.expires_at);
    }
}
