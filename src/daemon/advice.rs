//! WARN lines at start for setups that run but cannot do what a newcomer
//! expects: no provider (every import answers `unknown provider`), or
//! configured clients of which none may manage credentials.

use crate::api::auth::default_key_path;
use crate::config::Config;

/// What looks wrong in `config`, one sentence each, saying what to do.
pub(super) fn problems(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if config.providers.is_empty() {
        out.push(
            "no provider is configured: every credential call will answer `unknown provider`; \
             add a [providers.NAME] table (see config/tokend.example.toml) and restart"
                .to_owned(),
        );
    }
    if !config.clients.is_empty() && !config.clients.values().any(|c| c.manage) {
        let unused = default_key_path(&config.database_path());
        let note = if unused.exists() {
            format!(" ({} is no longer used)", unused.display())
        } else {
            String::new()
        };
        out.push(format!(
            "[clients] is configured, so the generated default client is off{note}, and no client has \
             manage = true: nobody can add credentials over the API; run `tokend client-key admin --manage` \
             and add the table it prints"
        ));
    }
    out
}

pub(super) fn warn_at_start(config: &Config) {
    for problem in problems(config) {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load_from(Some(&path), Path::new("/nonexistent"), Vec::new()).unwrap()
    }

    #[test]
    fn no_provider_and_no_managing_client_are_named() {
        let p = problems(&config(""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("no provider is configured"), "{p:?}");

        let hash = "ab".repeat(32);
        let p = problems(&config(&format!(
            "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\
             [clients.billing]\nkey_sha256 = \"{hash}\"\n"
        )));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no client has manage = true"), "{p:?}");

        let p = problems(&config(&format!(
            "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\
             [clients.admin]\nkey_sha256 = \"{hash}\"\nmanage = true\n"
        )));
        assert!(p.is_empty(), "{p:?}");
    }
}
