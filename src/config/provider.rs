//! One `[providers.NAME]` table, and the kinds, data centres and client
//! authentication methods it names.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use super::fields::{empty_as_none, redact_list, redact_option};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Cronofy,
    Oauth2,
}

/// Cronofy's data centres; each has its own `api` and `app` host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
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
    /// Filled from `client_secret_file` at load time when that is set.
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
}

impl ProviderConfig {
    pub fn data_center(&self) -> DataCenter {
        self.data_center.unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_centre_hosts() {
        assert_eq!(
            DataCenter::Us.api_base_url().as_str(),
            "https://api.cronofy.com/"
        );
        assert_eq!(
            DataCenter::De.app_base_url().as_str(),
            "https://app-de.cronofy.com/"
        );
        assert_eq!(
            DataCenter::Sg.api_base_url().as_str(),
            "https://api-sg.cronofy.com/"
        );
    }
}
