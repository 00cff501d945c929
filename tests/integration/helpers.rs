//! `spawn_app()`: the real daemon (`tokend::daemon::serve`) on a loopback
//! port, a temp database, the fake provider, and typed request helpers.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fake_provider::{CLIENT_ID, CLIENT_SECRET, FakeProvider};
use tokend::clock::Clock;
use tokend::config::{Config, load_from};
use tokend::daemon::{Listeners, ServeOptions, serve};

/// 2026-01-01T00:00:00Z: where manual clocks start.
pub const T0: i64 = 1_767_225_600_000;
pub const REDIRECT_URI: &str = "https://app.example/oauth/callback";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub addr: std::net::SocketAddr,
    /// The generated `default` client's key (full rights).
    pub key: String,
    pub http: reqwest::Client,
    pub fake: FakeProvider,
    pub clock: Clock,
    pub dir: TempDir,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// An app's directory, handed back by [`TestApp::shutdown`] or made by a
/// test, for [`AppOptions::dir`]. Dropped without a restart, it takes its
/// PostgreSQL database with it (as the app's own drop would have).
pub struct AppDir(Option<TempDir>);

impl AppDir {
    pub fn path(&self) -> &std::path::Path {
        self.0.as_ref().expect("an app directory").path()
    }

    fn into_inner(mut self) -> TempDir {
        self.0.take().expect("an app directory")
    }
}

impl From<TempDir> for AppDir {
    fn from(dir: TempDir) -> AppDir {
        AppDir(Some(dir))
    }
}

impl Drop for AppDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            crate::pg::release(dir.path());
        }
    }
}

#[derive(Default)]
pub struct AppOptions {
    /// TOML appended to the generated configuration.
    pub extra_toml: String,
    /// TOML added to its `[server]` table (which `extra_toml` cannot reopen).
    pub server_toml: String,
    /// A real clock instead of the manual one.
    pub system_clock: bool,
    /// Use this provider instead of starting a new one (restarts).
    pub fake: Option<FakeProvider>,
    /// Use this directory (restarts).
    pub dir: Option<AppDir>,
    /// Use this clock (several daemons on one database).
    pub clock: Option<Clock>,
    /// Share another app's directory (its database and key) without owning it.
    pub share_dir_of: Option<PathBuf>,
    /// `TOKEND__...` overrides, as the environment layer.
    pub env: Vec<(String, String)>,
    /// How long a stop waits for refreshes in flight (default 5 s).
    pub drain_timeout: Option<Duration>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// The configuration the tests run with: both provider kinds pointing at the fake.
pub fn test_config_toml(dir: &std::path::Path, fake: &FakeProvider, extra: &str) -> String {
    test_config_toml_with(dir, fake, "", extra)
}

/// [`test_config_toml`] with `server` added to the `[server]` table.
pub fn test_config_toml_with(
    dir: &std::path::Path,
    fake: &FakeProvider,
    server: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
{server}
[storage]
{storage}
[log]
level = "info"
[providers.cronofy]
kind = "cronofy"
api_base_url = "{url}"
app_base_url = "{url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uris = ["{REDIRECT_URI}"]
request_timeout_secs = 5
max_requests_per_minute = 60000
burst = 1000
[providers.google]
kind = "oauth2"
token_url = "{url}/oauth2/token"
revocation_url = "{url}/oauth2/revoke"
authorization_url = "{url}/oauth2/auth"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uris = ["{REDIRECT_URI}"]
request_timeout_secs = 5
max_requests_per_minute = 60000
burst = 1000
{extra}
"#,
        storage = crate::pg::storage_toml(dir),
        url = fake.url,
    )
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    // The daemon's log, shown by the test harness for failing tests only.
    crate::logs::init();
    let fake = match options.fake {
        Some(f) => f,
        None => FakeProvider::start().await,
    };
    let dir = options
        .dir
        .map(AppDir::into_inner)
        .unwrap_or_else(|| tempfile::tempdir().unwrap());
    let data_dir = options
        .share_dir_of
        .unwrap_or_else(|| dir.path().to_path_buf());
    let path = dir.path().join("tokend.toml");
    std::fs::write(
        &path,
        test_config_toml_with(&data_dir, &fake, &options.server_toml, &options.extra_toml),
    )
    .unwrap();
    let config = load_from(Some(&path), &PathBuf::from("/nonexistent"), options.env).unwrap();
    let clock = match options.clock {
        Some(c) => c,
        None if options.system_clock => Clock::system(),
        None => Clock::manual(T0),
    };
    let listeners = Listeners::bind(&config.server).unwrap();
    let addr = listeners.local_addrs()[0];
    let (stop, stopped) = oneshot::channel::<()>();
    let serve_options = ServeOptions {
        clock: clock.clone(),
        drain_timeout: options.drain_timeout.unwrap_or(Duration::from_secs(5)),
        ..ServeOptions::default()
    };
    let task = tokio::spawn(serve(
        config.clone(),
        listeners,
        serve_options,
        async move {
            let _ = stopped.await;
        },
    ));
    let mut app = TestApp {
        url: format!("http://{addr}"),
        addr,
        key: String::new(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        fake,
        clock,
        config,
        dir,
        stop: Some(stop),
        task: Some(task),
    };
    app.wait_ready().await;
    let key = std::fs::read_to_string(data_dir.join("client.key")).unwrap_or_default();
    app.key = key.trim().to_owned();
    app
}

impl TestApp {
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("tokend did not become ready");
    }

    /// Stops the daemon as SIGTERM would and waits for it; its directory
    /// (and database) handed back for a restart.
    pub async fn shutdown(mut self) -> (FakeProvider, AppDir) {
        self.stop_now().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (self.fake.clone(), AppDir(Some(dir)))
    }

    /// Stops the daemon as SIGTERM would; what `serve` returned.
    pub async fn shutdown_result(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }

    async fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path)
    }

    /// `GET /v1/tokens/{id}`.
    pub async fn token(&self, id: &str) -> (StatusCode, Value) {
        send(self.get(&format!("/v1/tokens/{id}"))).await
    }

    /// Imports `refresh_token` for `id` at the Cronofy provider (the fake
    /// accepts it), without an access token: tokend refreshes at once.
    pub async fn import(&self, id: &str, refresh_token: &str) -> (StatusCode, Value) {
        if !self.fake.is_valid(refresh_token) {
            self.fake.add_refresh_token(refresh_token, json!({}));
        }
        send(self.put(&format!("/v1/credentials/{id}")).json(&json!({
            "provider": "cronofy",
            "refresh_token": refresh_token,
        })))
        .await
    }

    pub fn database(&self) -> PathBuf {
        self.config.database_path()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The directory goes now (unless `shutdown` handed it on for a
        // restart): so does the PostgreSQL database it stood for.
        crate::pg::release(self.dir.path());
    }
}

/// Sends a request and returns its status and JSON body (`null` if none).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Polls `f` until it is true, for up to ~3 s of real time.
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// RFC 3339 (as the API shows times) to Unix ms.
pub fn parse_time(s: &str) -> i64 {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl TestApp {
    /// `GET /v1/credentials/{id}`.
    pub async fn view(&self, id: &str) -> Value {
        let (status, view) = send(self.get(&format!("/v1/credentials/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        view
    }

    /// When the refresher will look at this credential's grant next.
    pub async fn next_refresh_at(&self, id: &str) -> i64 {
        let view = self.view(id).await;
        parse_time(
            view["next_refresh_at"]
                .as_str()
                .unwrap_or_else(|| panic!("no next_refresh_at: {view}")),
        )
    }

    /// Moves the manual clock to `at` (Unix ms) if it is not there yet.
    pub fn advance_to(&self, at: i64) {
        let now = self.clock.now();
        if at > now {
            self.clock.advance(Duration::from_millis((at - now) as u64));
        }
    }

    /// Waits until the credential's token satisfies `f` (a refresh landed).
    pub async fn wait_token(&self, id: &str, f: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            let (status, token) = self.token(id).await;
            if status == StatusCode::OK && f(&token) {
                return token;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for the token of {id}");
    }

    /// Waits until the credential's view satisfies `f`, and returns it. What
    /// a refresh changes is written *after* the fake has answered, so a test
    /// that saw the call reads the view through this, never at once.
    pub async fn wait_view(&self, id: &str, f: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            let (status, view) = send(self.get(&format!("/v1/credentials/{id}"))).await;
            if status == StatusCode::OK && f(&view) {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for the view of {id}");
    }

    /// Waits until the fake has seen `n` refresh calls in all.
    pub async fn wait_refresh_calls(&self, n: usize) {
        let fake = self.fake.clone();
        eventually(&format!("{n} refresh calls"), async || {
            fake.refresh_calls() >= n
        })
        .await;
        assert_eq!(
            self.fake.refresh_calls(),
            n,
            "more refresh calls than expected"
        );
    }

    /// Asserts that no further refresh call arrives within a short real wait.
    pub async fn assert_no_more_calls(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(self.fake.refresh_calls(), n, "unexpected refresh call");
    }
}
