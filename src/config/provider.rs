//! One `[providers.NAME]` table, and the kinds, data centres and client
//! authentication methods it names.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use super::fields::{empty_as_none, redact_list, redact_option};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ProviderKind {
    Cronofy,
    Oauth2,
}

/// Cronofy's data centres; each has its own `api` and `app` host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum DataCenter {
    #[default]
    Us,
    De,
    Uk,
    Ca,
    Au,
    Sg,
}

impl DataCenter {
    /// The suffix Cronofy puts after `api`/`app` in host names (`us` has none).
    fn host_suffix(self) -> &'static str {
        match self {
            DataCenter::Us => "",
            DataCenter::De => "-de",
            DataCenter::Uk => "-uk",
            DataCenter::Ca => "-ca",
            DataCenter::Au => "-au",
            DataCenter::Sg => "-sg",
        }
    }

    pub fn api_base_url(self) -> Url {
        let url = format!("https://api{}.cronofy.com", self.host_suffix());
        Url::parse(&url).expect("static data centre URL parses")
    }

    pub fn app_base_url(self) -> Url {
        let url = format!("https://app{}.cronofy.com", self.host_suffix());
        Url::parse(&url).expect("static data centre URL parses")
    }
}

/// Which grants are refreshed in the background (see the refresh budget
/// in `refresh::budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum RefreshMode {
    /// Every grant while the budget covers them all; past it, the most
    /// recently handed-out ones, as many as the budget covers.
    #[default]
    Auto,
    /// Every active grant, within the budget (behind when it does not cover them).
    Eager,
    /// None: a token request that needs a refresh makes it.
    OnDemand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum AuthMethod {
    #[default]
    ClientSecretPost,
    ClientSecretBasic,
}

/// One `[providers.NAME]` table. Keys that belong to the other kind are refused
/// by validation, so a typo'd setup fails loudly instead of being ignored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Cronofy only; `us` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_center: Option<DataCenter>,
    /// Cronofy: overrides the data centre's api host (token, revoke,
    /// application calendars and the proxy). oauth2: where the proxy
    /// forwards; without it the proxy refuses this provider.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_base_url: Option<Url>,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub app_base_url: Option<Url>,
    /// oauth2 only: the RFC 6749 token endpoint.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_url: Option<Url>,
    /// oauth2 only: the RFC 7009 revocation endpoint.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub revocation_url: Option<Url>,
    /// oauth2 only: where `GET /v1/authorize-url` sends people (not in SPEC §3's
    /// example, but an authorization URL cannot be built without it).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub authorization_url: Option<Url>,
    #[serde(default)]
    pub auth_method: AuthMethod,
    #[serde(default)]
    pub client_id: String,
    /// Filled from `client_secret_file` by `Config::read_secrets` when a command needs it.
    #[serde(default, serialize_with = "redact_option")]
    pub client_secret: Option<SecretString>,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// Tried in order after `client_secret` fails with `invalid_client`.
    #[serde(default, serialize_with = "redact_list")]
    pub previous_client_secrets: Vec<SecretString>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default = "default_requests_per_minute")]
    pub max_requests_per_minute: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_provider_timeout")]
    pub request_timeout_secs: u64,
    /// PKCE (RFC 7636, `S256`) on the authorization URLs tokend builds and
    /// their code exchanges. Off only for a server that refuses it.
    #[serde(default = "default_pkce")]
    pub pkce: bool,
    /// RFC 9207: the issuer identifier the server puts in `iss` on its
    /// authorization responses. Set, a callback must carry exactly this
    /// `iss` (mix-up defence). Compared as a string, so kept as one: a `Url`
    /// would add a trailing `/` the server does not send.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer: Option<String>,
    /// Which grants are kept warm by background refreshes.
    #[serde(default)]
    pub refresh_mode: RefreshMode,
    /// The share of `max_requests_per_minute` background refreshes may
    /// use; token requests, forced refreshes and new grants may use all of it.
    #[serde(default = "default_refresh_share")]
    pub refresh_share: f64,
}

impl ProviderConfig {
    pub fn data_center(&self) -> DataCenter {
        self.data_center.unwrap_or_default()
    }

    /// Where `/v1/proxy` forwards: `api_base_url`, else (Cronofy) the data
    /// centre's api host. `None` for an oauth2 provider without one.
    pub fn proxy_base_url(&self) -> Option<Url> {
        match (self.kind, &self.api_base_url) {
            (_, Some(url)) => Some(url.clone()),
            (ProviderKind::Cronofy, None) => Some(self.data_center().api_base_url()),
            (ProviderKind::Oauth2, None) => None,
        }
    }

    /// Nothing that shapes the provider client differs, secrets included
    /// (SIGHUP rebuilds only providers whose settings changed).
    pub fn same_settings(&self, other: &ProviderConfig) -> bool {
        use secrecy::ExposeSecret;
        let secrets = |c: &ProviderConfig| {
            let mut all: Vec<String> = c
                .client_secret
                .iter()
                .map(|s| s.expose_secret().to_owned())
                .collect();
            all.extend(
                c.previous_client_secrets
                    .iter()
                    .map(|s| s.expose_secret().to_owned()),
            );
            zeroize::Zeroizing::new(all)
        };
        toml::to_string(self).ok() == toml::to_string(other).ok()
            && *secrets(self) == *secrets(other)
    }
}

fn default_requests_per_minute() -> u32 {
    300
}
fn default_burst() -> u32 {
    20
}
fn default_provider_timeout() -> u64 {
    20
}
fn default_pkce() -> bool {
    true
}
fn default_refresh_share() -> f64 {
    0.5
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
