//! Layering: embedded defaults, then the file, then `TOKEND__SECTION__KEY`.

use std::path::{Path, PathBuf};

use config::{Config as Layers, File, FileFormat, ValueKind};

use super::Config;
use crate::redact;

/// Compiled in, so `tokend serve` runs with no file at all.
pub const DEFAULTS: &str = include_str!("../../config/default.toml");
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tokend/tokend.toml";
const ENV_PREFIX: &str = "TOKEND__";

/// Keys whose environment value is a comma-separated list. Matched on the
/// last path segment because provider and client tables have names of their own.
const LIST_KEYS: &[&str] = &[
    "listen",
    "allowed_hosts",
    "previous_client_secrets",
    "redirect_uris",
    "unix_uids",
    "credentials",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Secret(#[from] super::secrets::SecretError),
}

/// Loads the configuration the daemon and the CLI use: `--config PATH`, else
/// `/etc/tokend/tokend.toml` if it exists, with the process environment on top.
pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    load_from(explicit, Path::new(DEFAULT_CONFIG_PATH), std::env::vars())
}

/// [`load`] with the default path and environment given, for tests.
pub fn load_from(
    explicit: Option<&Path>,
    default_path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut builder = Layers::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));

    let file = match explicit {
        Some(path) => Some(path),
        None if default_path.exists() => Some(default_path),
        None => None,
    };
    let mut file_text = None;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        file_text = Some(text);
    }

    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_lowercase().replace("__", ".");
        let value = env_value(&key, value);
        builder = builder.set_override(key.as_str(), value).map_err(|e| {
            let e = redact::serde_message(&e.to_string());
            ConfigError::Parse(format!("environment variable {name}: {e}"))
        })?;
    }

    let layers = builder.build().map_err(|e| match e {
        config::ConfigError::FileParse { cause, .. } => ConfigError::Parse(format!(
            "{}: {}",
            file.map_or("the embedded defaults".into(), |p| p.display().to_string()),
            without_source_lines(&cause.to_string())
        )),
        other => ConfigError::Parse(redact::serde_message(&other.to_string())),
    })?;
    let config: Config = serde_path_to_error::deserialize(layers).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // The `config` crate appends " for key `...`", which the path already says.
        let inner = inner.split(" for key `").next().unwrap_or(&inner);
        ConfigError::Parse(format!("{path}: {}", redact::serde_message(inner)))
    })?;

    let mut problems = config.problems();
    if let Some(text) = &file_text {
        problems.extend(super::strict::quoted_scalars(text, &config));
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(config)
}

/// A TOML syntax error as its position and reason. The `toml` crate's
/// message quotes the source line under a caret, and that line may be
/// `client_secret = "..."`: every start-up error, SIGHUP log line and
/// `check-config` would print the secret.
fn without_source_lines(message: &str) -> String {
    let snippet = |line: &str| {
        let (gutter, _) = line.split_once('|').unwrap_or((line, ""));
        line.contains('|') && gutter.trim().bytes().all(|b| b.is_ascii_digit())
    };
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !snippet(line))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Plain strings, never guessed into numbers: `config` converts a string to the
/// type a field wants on demand, so a numeric-looking secret keeps its zeros.
fn env_value(key: &str, value: String) -> ValueKind {
    let last = key.rsplit('.').next().unwrap_or(key);
    if LIST_KEYS.contains(&last) {
        let items: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        return items.into();
    }
    ValueKind::String(value)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_quote_a_source_line_or_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        for (text, says) in [
            (
                "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"s3cret-in-line\n",
                "line 4, column",
            ),
            (
                "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = s3cret-in-line\n",
                "line 4, column 17",
            ),
            (
                "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\nprevious_client_secrets = \"s3cret-in-line\"\n",
                "providers.c.previous_client_secrets: wrong type, expected a sequence",
            ),
            (
                "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\nauth_method = \"s3cret-in-line\"\n",
                "providers.c.auth_method: unknown value",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = load_from(Some(&path), Path::new("/nonexistent"), Vec::new())
                .unwrap_err()
                .to_string();
            assert!(!err.contains("s3cret"), "{err}");
            assert!(err.contains(says), "{says:?} in {err}");
        }
    }
}
