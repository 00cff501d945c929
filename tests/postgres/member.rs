//! A cluster member: the real daemon (`tokend::daemon::serve`) on a
//! runtime and thread of its own, so that a test can kill it as `kill -9`
//! would: its runtime is shut down at once, every task of the member is
//! dropped at its next await, nothing of its shutdown runs, its leases stay
//! in the database and its connections drop.

#![allow(dead_code)]

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use crate::helpers::send;
use tokend::clock::Clock;
use tokend::config::{Config, load_from};
use tokend::daemon::{Listeners, ServeOptions, serve};

enum End {
    Kill,
    Stop,
}

pub struct Member {
    pub url: String,
    pub key: String,
    http: reqwest::Client,
    end: Option<mpsc::Sender<End>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// Reads the configuration file a member runs with.
pub fn config(path: &Path) -> Config {
    load_from(Some(path), std::path::Path::new("/nonexistent"), Vec::new()).unwrap()
}

impl Member {
    /// Starts a member on `config` with `clock` and waits until it is ready.
    pub async fn start(config: &Config, clock: &Clock) -> Member {
        crate::logs::init();
        let key_file = config.database_path().with_file_name("client.key");
        let (config, clock) = (config.clone(), clock.clone());
        let (addr_tx, addr_rx) = mpsc::channel();
        let (end_tx, end_rx) = mpsc::channel::<End>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let listeners = Listeners::bind(&config.server).unwrap();
            addr_tx.send(listeners.local_addrs()[0]).unwrap();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let options = ServeOptions {
                clock,
                drain_timeout: Duration::from_secs(5),
                ..ServeOptions::default()
            };
            let task = rt.spawn(serve(config, listeners, options, async move {
                let _ = stop_rx.await;
            }));
            match end_rx.recv() {
                Ok(End::Stop) => {
                    let _ = stop_tx.send(());
                    rt.block_on(task).unwrap()
                }
                Ok(End::Kill) | Err(_) => {
                    rt.shutdown_background();
                    Ok(())
                }
            }
        });
        let addr = addr_rx.recv().unwrap();
        let mut member = Member {
            url: format!("http://{addr}"),
            key: String::new(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            end: Some(end_tx),
            thread: Some(thread),
        };
        member.wait_ready().await;
        let key = std::fs::read_to_string(key_file).unwrap_or_default();
        member.key = key.trim().to_owned();
        member
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("member {} never became ready", self.url);
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
    }

    pub async fn token(&self, id: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, &format!("/v1/tokens/{id}"))).await
    }

    /// Killed as by `kill -9`.
    pub fn kill9(mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(End::Kill);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stopped as by SIGTERM; the daemon's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(end) = self.end.take() {
            let _ = end.send(End::Stop);
        }
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(End::Kill);
        }
    }
}
