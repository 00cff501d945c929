//! Quoted booleans and numbers in the file are refused.
//!
//! The `config` crate turns a string into whatever type a field wants, which
//! environment variables need (they are all strings), but it also lets
//! `allow_remote = "false"` or `manage = "yes"` through from the file, where
//! the quotes are usually a mistake about what the value means. So the file
//! is checked on its own: a string where the effective configuration holds
//! a boolean or a number is a problem that names the key.

use toml::Value;

use super::Config;

/// One problem per quoted boolean or number in the file `text`.
pub(super) fn quoted_scalars(text: &str, config: &Config) -> Vec<String> {
    let (Ok(file), Ok(effective)) = (text.parse::<toml::Table>(), Value::try_from(config)) else {
        // A file that does not parse was already refused by the loader.
        return Vec::new();
    };
    let mut problems = Vec::new();
    walk(&Value::Table(file), Some(&effective), "", &mut problems);
    problems
}

fn walk(file: &Value, effective: Option<&Value>, key: &str, problems: &mut Vec<String>) {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_owned()
        } else {
            format!("{key}.{k}")
        }
    };
    match (file, effective) {
        (Value::Table(t), Some(Value::Table(e))) => {
            for (k, v) in t {
                walk(v, e.get(k), &join(k), problems);
            }
        }
        (Value::Array(a), Some(Value::Array(e))) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, e.get(i), &format!("{key}[{i}]"), problems);
            }
        }
        // The quoted text is not repeated: it may be a secret in the wrong key.
        (Value::String(_), Some(Value::Boolean(_))) => problems.push(format!(
            "{key} must be true or false without quotes, got a quoted string"
        )),
        (Value::String(_), Some(Value::Integer(_) | Value::Float(_))) => problems.push(format!(
            "{key} must be a number without quotes, got a quoted string"
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::load_from;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        load_from(Some(&path), Path::new("/nonexistent"), env).map_err(|e| e.to_string())
    }

    #[test]
    fn quoted_booleans_and_numbers_in_the_file_are_refused() {
        for (text, expected) in [
            (
                "[server]\nallow_remote = \"true\"\n",
                "server.allow_remote must be true or false without quotes, got a quoted string",
            ),
            (
                "[server]\nmetrics_public = \"yes\"\n",
                "server.metrics_public must be true or false",
            ),
            (
                "[clients.a]\nkey_sha256 = \"ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12\"\nmanage = \"false\"\n",
                "clients.a.manage must be true or false",
            ),
            (
                "[server]\nmax_body_bytes = \"100\"\n",
                "server.max_body_bytes must be a number without quotes",
            ),
            (
                "[server]\nunix_socket = \"/run/t.sock\"\n[clients.a]\nunix_uids = [\"1000\"]\n",
                "clients.a.unix_uids[0] must be a number",
            ),
        ] {
            let err = load(text, &[]).unwrap_err();
            assert!(err.contains(expected), "for {text:?}: {err}");
        }
    }

    #[test]
    fn environment_values_are_strings_and_still_accepted() {
        let c = load(
            "[server]\nallow_remote = true\n",
            &[("TOKEND__SERVER__METRICS_PUBLIC", "true")],
        )
        .unwrap();
        assert!(c.server.allow_remote && c.server.metrics_public);
        // Strings where strings belong are fine.
        load("[server]\nunix_socket_mode = \"0600\"\n", &[]).unwrap();
    }
}
