//! Layering, unknown keys, validation messages and redaction.
//!
//! - `rules`: the validation messages, each naming the key and the rule.

mod rules;

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::*;

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn nowhere() -> PathBuf {
    PathBuf::from("/nonexistent/tokend.toml")
}

const PROVIDER: &str = r#"
[providers.cronofy]
kind = "cronofy"
client_id = "cid"
client_secret = "file-secret-123"
"#;

#[test]
fn embedded_defaults_alone_are_valid() {
    let c = load_from(None, &nowhere(), env(&[])).unwrap();
    assert_eq!(c.server.listen, ["127.0.0.1:7780".parse().unwrap()]);
    assert_eq!(c.server.unix_socket_mode, 0o660);
    assert_eq!(c.refresh.min_lead_secs, 300);
    assert!(c.providers.is_empty() && c.clients.is_empty());
}

#[test]
fn layering_is_defaults_then_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "t.toml",
        "[refresh]\nmin_lead_secs = 120\nmax_concurrency = 8\n",
    );
    let c = load_from(
        Some(&path),
        &nowhere(),
        env(&[
            ("TOKEND__REFRESH__MAX_CONCURRENCY", "4"),
            ("OTHER__REFRESH__MAX_CONCURRENCY", "99"),
        ]),
    )
    .unwrap();
    assert_eq!(c.refresh.min_lead_secs, 120, "file over default");
    assert_eq!(c.refresh.max_concurrency, 4, "env over file");
    assert_eq!(c.refresh.retry_max_secs, 300.0, "default kept");
}

#[test]
fn default_path_is_used_only_when_it_exists_and_no_path_given() {
    let dir = tempfile::tempdir().unwrap();
    let default = file(
        dir.path(),
        "default.toml",
        "[refresh]\nmin_lead_secs = 111\n",
    );
    let explicit = file(
        dir.path(),
        "explicit.toml",
        "[refresh]\nmin_lead_secs = 222\n",
    );
    let c = load_from(None, &default, env(&[])).unwrap();
    assert_eq!(c.refresh.min_lead_secs, 111);
    let c = load_from(Some(&explicit), &default, env(&[])).unwrap();
    assert_eq!(c.refresh.min_lead_secs, 222);
    let err = load_from(Some(&dir.path().join("missing.toml")), &default, env(&[])).unwrap_err();
    assert!(err.to_string().contains("missing.toml"), "{err}");
}

#[test]
fn environment_lists_and_provider_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "t.toml", PROVIDER);
    let c = load_from(
        Some(&path),
        &nowhere(),
        env(&[
            ("TOKEND__SERVER__LISTEN", "127.0.0.1:1, [::1]:2"),
            ("TOKEND__PROVIDERS__CRONOFY__DATA_CENTER", "de"),
            (
                "TOKEND__PROVIDERS__CRONOFY__REDIRECT_URIS",
                "https://a.example/cb,https://b.example/cb",
            ),
            // Looks like a number: must stay the exact string.
            ("TOKEND__PROVIDERS__CRONOFY__CLIENT_ID", "000123"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.listen.len(), 2);
    let p = &c.providers["cronofy"];
    assert_eq!(p.data_center(), DataCenter::De);
    assert_eq!(
        p.redirect_uris,
        ["https://a.example/cb", "https://b.example/cb"]
    );
    assert_eq!(p.client_id, "000123");
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[server]\nlisen = []\n", "server.lisen"),
        ("[nonsense]\na = 1\n", "nonsense"),
        (
            "[providers.cronofy]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\nsecret = \"z\"\n",
            "providers.cronofy.secret",
        ),
    ] {
        let path = file(dir.path(), "t.toml", text);
        let err = load_from(Some(&path), &nowhere(), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key) && err.contains("unknown field"), "{err}");
    }
    let err = load_from(None, &nowhere(), env(&[("TOKEND__LOG__LEVLE", "debug")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("log.levle"), "{err}");
}

#[test]
fn secrets_are_redacted_in_check_config_and_debug() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = file(dir.path(), "secret", "from-a-file-456\n");
    let text = format!(
        "{PROVIDER}previous_client_secrets = [\"old-secret-789\"]\n\
         [providers.google]\nkind = \"oauth2\"\nclient_id = \"g\"\ntoken_url = \"https://oauth2.example/token\"\n\
         client_secret_file = {:?}\n",
        secret_file.display().to_string()
    );
    let path = file(dir.path(), "t.toml", &text);
    let mut c = load_from(Some(&path), &nowhere(), env(&[])).unwrap();
    assert!(
        c.providers["google"].client_secret.is_none(),
        "secret files are read only when a command needs them"
    );
    c.read_secrets().unwrap();
    assert_eq!(
        c.providers["google"]
            .client_secret
            .as_ref()
            .unwrap()
            .expose_secret(),
        "from-a-file-456",
        "file read, newline trimmed"
    );
    let shown = format!("{}\n{c:?}", c.to_redacted_toml());
    for secret in ["file-secret-123", "old-secret-789", "from-a-file-456"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(shown.contains("[REDACTED]"));
    // The redacted output is itself a readable configuration of the same shape.
    assert!(c.to_redacted_toml().contains("client_id = \"cid\""));
}

#[test]
fn a_missing_secret_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[providers.g]\nkind = \"oauth2\"\nclient_id = \"g\"\ntoken_url = \"https://o.example/t\"\nclient_secret_file = \"/nonexistent/s\"\n";
    let path = file(dir.path(), "t.toml", text);
    let mut c = load_from(Some(&path), &nowhere(), env(&[])).unwrap();
    let err = c.read_secrets().unwrap_err().to_string();
    assert!(
        err.contains("providers.g.client_secret_file") && err.contains("/nonexistent/s"),
        "{err}"
    );
}

#[test]
fn the_annotated_example_is_a_valid_configuration() {
    // Verbatim: it must start as shipped, once its one secret file exists.
    let text = include_str!("../../../config/tokend.example.toml");
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "example.toml", text);
    let mut c = load_from(Some(&path), &nowhere(), env(&[])).unwrap();
    assert_eq!(c.providers.keys().collect::<Vec<_>>(), ["cronofy"]);
    // No placeholder client: the generated default client (full rights) stays.
    assert!(c.clients.is_empty());
    file(dir.path(), "cronofy_secret", "s3cret\n");
    let search = SecretSearch {
        credentials_directory: Some(dir.path().to_path_buf()),
        credstores: Vec::new(),
    };
    c.read_secrets_with(&search).unwrap();
    assert!(c.providers["cronofy"].client_secret.is_some());
}
