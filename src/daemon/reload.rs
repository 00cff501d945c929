//! SIGHUP: re-read the configuration and apply what can change live —
//! clients, provider secrets, endpoints and limits, the log level, allowed
//! hosts and `metrics_public` — without dropping a connection or the cache.
//! Settings that need a restart are named in one WARN line.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::supervise::Supervisor;
use crate::api::AppState;
use crate::api::auth::Clients;
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::provider::{self, Providers};
use crate::refresh::Refresher;
use crate::telemetry::LogHandle;
use crate::telemetry::systemd;

/// Keys a running daemon can take over (everything else needs a restart).
const LIVE_KEYS: &[&str] = &["server.allowed_hosts", "server.metrics_public", "log.level"];

/// What SIGHUP changes: the API's state, the refresher's providers (rebuilt
/// from the ones running), the log level.
pub(super) struct Reloader {
    pub current: Config,
    pub source: Option<PathBuf>,
    pub state: AppState,
    pub refresher: Refresher,
    /// The providers running now.
    pub providers: Providers,
    /// The cluster's rate buckets, which rebuilt providers take from too.
    pub buckets: Option<std::sync::Arc<dyn crate::provider::bucket::SharedBuckets>>,
    pub clock: Clock,
    pub log: Option<LogHandle>,
    pub supervisor: Supervisor,
}

impl Reloader {
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot handle SIGHUP; reloading is off");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = hup.recv() => {}
            }
            tracing::info!("SIGHUP received: reloading the configuration");
            systemd::reloading();
            self.reload();
            systemd::reloaded(&self.supervisor.status_line());
        }
    }

    fn reload(&mut self) {
        let new = match config::load(self.source.as_deref()).and_then(|mut c| {
            c.read_secrets()?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reload failed; the running configuration stays");
                return;
            }
        };
        let database = self.current.database_path();
        let clients = match Clients::from_config(&new, &database) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reload failed (clients); the running configuration stays");
                return;
            }
        };
        // Rebuild only providers whose settings changed: the others keep
        // their rate-limiter state and any 429 pause.
        let mut providers = self.providers.clone();
        providers.retain(|name, _| new.providers.contains_key(name));
        for (name, settings) in &new.providers {
            let unchanged = self
                .current
                .providers
                .get(name)
                .is_some_and(|old| old.same_settings(settings));
            if unchanged && providers.contains_key(name) {
                continue;
            }
            match provider::build(name, settings, self.clock.clone(), self.buckets.as_ref()) {
                Ok(p) => {
                    providers.insert(name.clone(), p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload failed (providers); the running configuration stays");
                    return;
                }
            }
        }
        let restart_needed = restart_only_changes(&self.current, &new);
        self.refresher.set_providers(providers.clone(), &new);
        self.providers = providers;
        if let Some(log) = &self.log {
            log.set_level(&new.log.level);
        }
        let client_count = clients.len();
        self.state.reload(new.clone(), clients);
        if !restart_needed.is_empty() {
            tracing::warn!(
                keys = %restart_needed.join(", "),
                "these settings changed but take effect only after a restart"
            );
        }
        tracing::info!(
            clients = client_count,
            providers = new.providers.len(),
            "configuration reloaded (clients, providers, log level, allowed hosts)"
        );
        self.current = new;
    }
}

/// Keys outside `[providers]`/`[clients]` whose value changed and that a
/// running daemon does not take over.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let flat = |c: &Config| {
        let mut out = Vec::new();
        if let Ok(toml::Value::Table(t)) = toml::Value::try_from(c) {
            for (section, v) in t {
                if section == "providers" || section == "clients" {
                    continue;
                }
                if let toml::Value::Table(keys) = v {
                    for (k, v) in keys {
                        out.push((format!("{section}.{k}"), v.to_string()));
                    }
                }
            }
        }
        out
    };
    let before = flat(old);
    flat(new)
        .into_iter()
        .filter(|(k, v)| {
            !LIVE_KEYS.contains(&k.as_str()) && before.iter().all(|(bk, bv)| bk != k || bv != v)
        })
        .map(|(k, _)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        let text = format!(
            "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"s1\"\n{extra}"
        );
        std::fs::write(&path, text).unwrap();
        config::load_from(Some(&path), Path::new("/nonexistent"), Vec::new()).unwrap()
    }

    #[test]
    fn names_only_changed_keys_that_need_a_restart() {
        let old = config("");
        let new = config(
            "[refresh]\nmax_concurrency = 3\n[server]\nallowed_hosts = [\"tokend.internal\"]\n[log]\nlevel = \"debug\"\n",
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            ["refresh.max_concurrency"]
        );
        assert!(restart_only_changes(&old, &old).is_empty());
    }

    #[test]
    fn a_changed_secret_is_a_changed_provider() {
        let a = config("");
        let b = config("");
        assert!(a.providers["c"].same_settings(&b.providers["c"]));
        let c = config("").providers["c"].clone();
        let mut d = c.clone();
        d.client_secret = Some(secrecy::SecretString::from("s2".to_owned()));
        assert!(
            !c.same_settings(&d),
            "same TOML (redacted), different secret"
        );
        d = c.clone();
        d.burst = 7;
        assert!(!c.same_settings(&d));
    }
}
