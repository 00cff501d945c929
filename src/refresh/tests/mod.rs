//! The refresh core driven directly: `refresh_grant`, the intake and the
//! group commit against a real SQLite store in a temp dir and a provider
//! faked in-process. No HTTP, no scheduler: each test calls the unit of work
//! and looks at what it left in the store, the cache and the provider's log.
//!
//! Time: the manual clock (`T0`, moved by the tests) for every timestamp,
//! due time and lease expiry. The few real waits of the core (a held
//! lease's 100 ms poll, a refused commit's retry) run on tokio's real
//! time: under paused time, tokio jumps to sqlx's pool timeouts whenever
//! the runtime waits on SQLite's worker thread, and every query times out.
//!
//! - `fake`: the scripted provider.
//! - `faulty`: a store wrapper that refuses writes on demand and counts them.
//! - `flight`, `failures`, `races`, `intake`, `durability`, `store_down`:
//!   the tests.

mod durability;
mod failures;
mod fake;
mod faulty;
mod flight;
mod intake;
mod races;
mod store_down;

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;
use tempfile::TempDir;

use super::Refresher;
use crate::cache::{Cache, TokenEntry};
use crate::clock::Clock;
use crate::config::Config;
use crate::model::{AccessToken, Extras, GrantId};
use crate::provider::Provider;
use crate::store::crypto::MasterKey;
use crate::store::{NewCredential, Store};
use crate::telemetry::metrics::Metrics;
use fake::FakeProvider;

/// Where the manual clock starts.
const T0: i64 = 1_700_000_000_000;

/// Waits (a millisecond at a time, five seconds at most) until `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A refresher over a fresh store and cache, with the fake as provider
/// `fake`.
struct Harness {
    refresher: Refresher,
    store: Store,
    cache: Arc<Cache>,
    clock: Clock,
    fake: Arc<FakeProvider>,
    metrics: Metrics,
    key: Arc<MasterKey>,
    dir: TempDir,
}

fn config(dir: &std::path::Path) -> Config {
    let path = dir.join("tokend.toml");
    std::fs::write(
        &path,
        "[providers.fake]\nkind = \"cronofy\"\nclient_id = \"id\"\nclient_secret = \"s\"\n\
         request_timeout_secs = 5\n[notify]\nfailing_after = 2\n",
    )
    .unwrap();
    crate::config::load_from(
        Some(&path),
        std::path::Path::new("/nonexistent"),
        Vec::new(),
    )
    .unwrap()
}

impl Harness {
    async fn new() -> Harness {
        Harness::wrapping(|store| store).await
    }

    /// A harness whose refresher sees the store through `wrap` (a fault injector).
    async fn wrapping(wrap: impl FnOnce(Store) -> Store) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let key = Arc::new(MasterKey::generate());
        let store = Store::open(&dir.path().join("tokend.db"), &key, clock.clone())
            .await
            .unwrap();
        let config = config(dir.path());
        let cache = Arc::new(Cache::new());
        let fake = Arc::new(FakeProvider::default());
        let metrics = Metrics::new();
        let providers: HashMap<String, Arc<dyn Provider>> =
            HashMap::from([("fake".to_owned(), Arc::clone(&fake) as Arc<dyn Provider>)]);
        let refresher = Refresher::new(
            wrap(store.clone()),
            Arc::clone(&cache),
            providers,
            clock.clone(),
            &config,
            metrics.clone(),
        );
        Harness {
            refresher,
            store,
            cache,
            clock,
            fake,
            metrics,
            key,
            dir,
        }
    }

    /// Stores credential `id` with refresh token `rt` and, if given, an
    /// access token `at` that expires `expires_in_ms` from now; due at
    /// `due_in_ms` from now. Published to the cache as the daemon's load would.
    async fn grant(&self, id: &str, rt: &str, at: Option<(&str, i64)>, due_in_ms: i64) -> GrantId {
        let now = self.clock.now();
        let access = at.map(|(token, expires_in_ms)| AccessToken {
            token: SecretString::from(token.to_owned()),
            token_type: "bearer".into(),
            expires_at: now + expires_in_ms,
            lifetime_secs: 3600,
            lifetime_issued: true,
        });
        let rt = SecretString::from(rt.to_owned());
        let out = self
            .store
            .put_credential(&NewCredential {
                id,
                provider: "fake",
                refresh_token: &rt,
                access: access.as_ref(),
                scope: Some("read"),
                extras: &Extras::new(),
                application_calendar_id: None,
                next_refresh_at: Some(now + due_in_ms),
                last_refresh_at: None,
                failure: None,
            })
            .await
            .unwrap();
        self.cache.publish(&out.state);
        out.grant_id()
    }

    /// The same database opened by another process (another lease owner).
    async fn other_process(&self) -> Store {
        Store::open(
            &self.dir.path().join("tokend.db"),
            &self.key,
            self.clock.clone(),
        )
        .await
        .unwrap()
    }

    fn entry(&self, id: &str) -> Arc<TokenEntry> {
        self.cache
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not in the cache"))
    }

    /// The access token the cache hands out for `id`.
    fn handed_out(&self, id: &str) -> String {
        let entry = self.entry(id);
        let body: serde_json::Value =
            serde_json::from_str(&format!("{}}}", entry.body_prefix())).unwrap();
        body["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// The refresh token and previous refresh token the store holds.
    async fn stored_tokens(&self, grant: GrantId) -> (String, Option<String>) {
        use secrecy::ExposeSecret;
        let g = self.store.get_grant(grant).await.unwrap().unwrap();
        (
            g.refresh_token.expose_secret().to_owned(),
            g.previous_refresh_token
                .map(|t| t.expose_secret().to_owned()),
        )
    }
}
