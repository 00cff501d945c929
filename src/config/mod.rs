//! Configuration: typed structs for every key of SPEC §3.
//!
//! Layering (embedded defaults < file < `TOKEND__SECTION__KEY` environment)
//! lives in [`load()`], the rules every value must satisfy in `validate`.
//! Secrets are [`SecretString`]s: they print `[REDACTED]` in Debug output and
//! in `tokend check-config`.

mod fields;
mod load;
mod provider;
mod provider_rules;
mod secrets;
mod server_rules;
mod strict;
mod validate;
mod variants;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use fields::{empty_as_none, none_as_empty, octal_mode, octal_mode_out, socket_addrs};
pub use load::{ConfigError, DEFAULT_CONFIG_PATH, load, load_from};
pub use provider::{AuthMethod, DataCenter, ProviderConfig, ProviderKind, RefreshMode};
pub use secrets::{CREDSTORE_DIRS, SecretError, SecretSearch};
pub(crate) use validate::valid_table_name;

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
    #[serde(deserialize_with = "socket_addrs")]
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
    /// A request head must be complete this long after its first byte.
    pub header_read_timeout_secs: u64,
    /// A connection with no request under way is closed after this long.
    pub idle_timeout_secs: u64,
    /// Open connections at most, all listeners together (lowered at start
    /// to fit under the open-file limit).
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// A SQLite file, or a `postgres://`/`postgresql://` URL (cluster mode).
    pub database: PathBuf,
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub encryption_key_file: Option<PathBuf>,
    /// The PostgreSQL password, read from this file (relative: looked up
    /// like the other secret files, `$CREDENTIALS_DIRECTORY` first).
    #[serde(deserialize_with = "empty_as_none", serialize_with = "none_as_empty")]
    pub database_password_file: Option<PathBuf>,
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
    /// A token counts as expired for hand-out (and `min_ttl`) this long
    /// before its expiry: servers date expiry from when they issued it
    /// (some rounding that down to the second).
    pub handout_margin_ms: u64,
    /// How long a hand-out waits for a refresh of its grant under way in
    /// this process before it answers with the old token (if still valid).
    pub handout_wait_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
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
    /// `false`: the client may use the proxy (`/v1/proxy`) but is refused
    /// the endpoints that hand out tokens: it never holds one.
    #[serde(default = "yes")]
    pub read_tokens: bool,
}

fn yes() -> bool {
    true
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
    /// Filled from `webhook_secret_file` by [`Config::read_secrets`]; not a key of its own.
    #[serde(skip)]
    pub webhook_secret: Option<SecretString>,
    pub failing_after: u32,
}

impl Config {
    /// The effective configuration as TOML, every secret replaced by
    /// `[REDACTED]`: secret keys, and in every value that is a URL (whatever
    /// its key, `storage.database = "postgres://..."` included) the
    /// userinfo and secret-looking query parameters.
    pub fn to_redacted_toml(&self) -> String {
        let mut value = toml::Value::try_from(self).expect("configuration serializes to TOML");
        fields::redact_urls(&mut value);
        toml::to_string_pretty(&value).expect("configuration serializes to TOML")
    }

    /// The database path: relative paths live under `$STATE_DIRECTORY` when
    /// systemd sets it, else under the working directory.
    ///
    /// With PostgreSQL there is no file, and this is a `tokend.db` in the
    /// host's own directory, where the files that live beside a SQLite
    /// database (the generated default client key) stay:
    /// `$STATE_DIRECTORY` when set, else the directory of
    /// `storage.encryption_key_file`, else the working directory.
    pub fn database_path(&self) -> PathBuf {
        let state_dir = std::env::var_os("STATE_DIRECTORY");
        if self.postgres_url().is_none() {
            return resolve_state_path(&self.storage.database, state_dir);
        }
        let key_dir = self
            .storage
            .encryption_key_file
            .as_deref()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty());
        match (state_dir, key_dir) {
            (None, Some(dir)) => dir.join("tokend.db"),
            (state_dir, _) => resolve_state_path(Path::new("tokend.db"), state_dir),
        }
    }

    /// The PostgreSQL URL when `storage.database` is one (cluster mode).
    pub fn postgres_url(&self) -> Option<&str> {
        let database = self.storage.database.to_str()?;
        crate::store::postgres::is_postgres_url(database).then_some(database)
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
}

#[cfg(test)]
mod tests;
