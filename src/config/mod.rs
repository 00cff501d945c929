//! Configuration: typed structs for every key of SPEC §3.
//!
//! Layering (embedded defaults < file < `TOKEND__SECTION__KEY` environment)
//! lives in [`load`], the rules every value must satisfy in [`validate`].
//! Secrets are [`SecretString`]s: they print `[REDACTED]` in Debug output and
//! in `tokend check-config`.

mod load;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

pub use load::{ConfigError, DEFAULT_CONFIG_PATH, load, load_from};

/// The whole effective configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub refresh: RefreshConfig,
    pub log: LogConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub clients: BTreeMap<String, ClientConfig>,
    pub notify: NotifyConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub unix_socket: Option<PathBuf>,
    #[serde(deserialize_with = "octal_mode", serialize_with = "octal_mode_out")]
    pub unix_socket_mode: u32,
    pub allow_remote: bool,
    /// Host names accepted besides the loopback ones (DNS-rebinding defence).
    pub allowed_hosts: Vec<String>,
    pub metrics_public: bool,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub database: PathBuf,
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshConfig {
    pub lead_fraction: f64,
    pub min_lead_secs: u64,
    pub jitter_fraction: f64,
    pub max_lifetime_secs: u64,
    pub max_concurrency: usize,
    pub retry_initial_secs: f64,
    pub retry_max_secs: f64,
    pub force_refresh_min_interval_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` overrides it.
    pub level: String,
}

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

/// One `[clients.NAME]` table: a local caller of the API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Hex SHA-256 of the bearer key (`tokend client-key` prints it).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        serialize_with = "none_as_empty"
    )]
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub unix_uids: Vec<u32>,
    #[serde(default = "all_credentials")]
    pub credentials: Vec<String>,
    #[serde(default)]
    pub manage: bool,
}

fn all_credentials() -> Vec<String> {
    vec!["*".to_owned()]
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub webhook_url: Option<Url>,
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Webhook targets other than loopback addresses are refused unless this is set.
    #[serde(default)]
    pub webhook_allow_remote: bool,
    /// Filled from `webhook_secret_file` at load time; not a key of its own.
    #[serde(skip)]
    pub webhook_secret: Option<SecretString>,
    pub failing_after: u32,
}

impl Config {
    /// The effective configuration as TOML, every secret replaced by `[REDACTED]`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serializes to TOML")
    }

    /// The database path: relative paths live under `$STATE_DIRECTORY` when
    /// systemd sets it, else under the working directory.
    pub fn database_path(&self) -> PathBuf {
        resolve_state_path(&self.storage.database, std::env::var_os("STATE_DIRECTORY"))
    }
}

fn resolve_state_path(path: &Path, state_dir: Option<std::ffi::OsString>) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    // systemd passes several directories separated by ':' when the unit names several.
    let first = state_dir.and_then(|dirs| {
        dirs.to_str()
            .and_then(|s| s.split(':').next().map(PathBuf::from))
    });
    match first {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

const REDACTED: &str = "[REDACTED]";

fn redact_option<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_str(""),
    }
}

fn redact_list<S: Serializer>(value: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(value.iter().map(|_| REDACTED))
}

/// `""` in a file means "not set" (SPEC §3 writes unset keys that way).
fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw = String::deserialize(d)?;
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(serde::de::Error::custom)
}

fn none_as_empty<S: Serializer, T: Serialize>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => s.serialize_str(""),
    }
}

fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let raw = String::deserialize(d)?;
    let digits = raw.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(serde::de::Error::custom(format!(
            "expected an octal file mode such as \"0660\", got {raw:?}"
        ))),
    }
}

fn octal_mode_out<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn relative_database_lives_under_state_directory() {
        let p = resolve_state_path(Path::new("tokend.db"), Some("/var/lib/tokend".into()));
        assert_eq!(p, PathBuf::from("/var/lib/tokend/tokend.db"));
        let p = resolve_state_path(Path::new("tokend.db"), Some("/a:/b".into()));
        assert_eq!(p, PathBuf::from("/a/tokend.db"));
        let p = resolve_state_path(Path::new("/srv/t.db"), Some("/var/lib/tokend".into()));
        assert_eq!(p, PathBuf::from("/srv/t.db"));
        let p = resolve_state_path(Path::new("tokend.db"), None);
        assert_eq!(p, PathBuf::from("tokend.db"));
    }

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

#[cfg(test)]
mod tests;
