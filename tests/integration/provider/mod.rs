//! The provider layer against the fake provider over real loopback HTTP:
//! exact request bodies, every error class, the rate limiter and the 429
//! pause on a manual clock, and secrets kept out of errors and logs; PKCE
//! and RFC 9207 `iss` end to end against stricter servers, and the fake's
//! switches that play them.

mod cronofy;
mod errors;
mod fake_interop;
mod limits;
mod oauth2;
mod pkce;
mod secrets;
mod signin;

use std::sync::Arc;

use secrecy::SecretString;
use tokend::clock::Clock;
use tokend::config::ProviderConfig;
use tokend::provider::{self, Provider};

use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, FakeProvider};

/// The one redirect URI the test providers have registered.
pub const REDIRECT: &str = "https://app.example/callback";
/// Wed, 21 Oct 2015 07:28:00 GMT: a manual clock's start, so HTTP-dates are easy.
pub const T0: i64 = 1_445_412_480_000;

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A provider config from TOML: `base` with `extra`'s keys laid over it.
fn config(base: &str, extra: &str) -> ProviderConfig {
    let mut table: toml::Table = base.parse().unwrap();
    let extra: toml::Table = extra.parse().unwrap();
    table.extend(extra);
    toml::Value::Table(table).try_into().unwrap()
}

/// A Cronofy provider whose API and app hosts are the fake, on a manual clock.
/// The burst is large so only the limiter tests ever wait for it.
pub fn cronofy(fake: &FakeProvider, extra: &str) -> (Arc<dyn Provider>, Clock) {
    let base = format!(
        r#"kind = "cronofy"
        data_center = "de"
        api_base_url = "{url}"
        app_base_url = "{url}/app"
        client_id = "{CLIENT_ID}"
        client_secret = "{CLIENT_SECRET}"
        redirect_uris = ["{REDIRECT}"]
        burst = 1000
        request_timeout_secs = 5"#,
        url = fake.url
    );
    let clock = Clock::manual(T0);
    let p = provider::build("cronofy", &config(&base, extra), clock.clone(), None).unwrap();
    (p, clock)
}

/// A generic OAuth 2.0 provider on the fake's RFC 6749 paths.
pub fn oauth2(fake: &FakeProvider, extra: &str) -> (Arc<dyn Provider>, Clock) {
    let base = format!(
        r#"kind = "oauth2"
        token_url = "{url}/oauth2/token"
        revocation_url = "{url}/oauth2/revoke"
        authorization_url = "https://accounts.example/o/oauth2/auth?access_type=offline"
        client_id = "{CLIENT_ID}"
        client_secret = "{CLIENT_SECRET}"
        redirect_uris = ["{REDIRECT}"]
        burst = 1000
        request_timeout_secs = 5"#,
        url = fake.url
    );
    let clock = Clock::manual(T0);
    let p = provider::build("google", &config(&base, extra), clock.clone(), None).unwrap();
    (p, clock)
}

pub use crate::logs::Logs;
