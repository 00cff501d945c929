//! A connection flood past the open-file limit, against the real binary:
//! idle clients cannot keep new ones out or starve a refresh of a socket or
//! the database of a file, and SIGTERM then completes though a half-sent
//! request is open.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::fake_provider::FakeProvider;
use crate::process::{Daemon, write_config};

/// The real binary with 256 open files at most, flooded with 400 idle
/// connections: new clients are still served and refreshes still reach the
/// provider and the database; then SIGTERM completes though a half-sent
/// request is open.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_flood_past_the_open_file_limit_starves_nothing() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "");
    fake.add_refresh_token("rt-1", json!({}));
    let daemon = Daemon::start_with_open_files(&config, 256);
    daemon.wait_ready().await;
    let created = daemon
        .request(Method::PUT, "/v1/credentials/alice")
        .json(&json!({"provider": "cronofy", "refresh_token": "rt-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let addr = daemon.url.trim_start_matches("http://").to_owned();
    let flood: Vec<TcpStream> = join_all((0..400).map(|_| {
        let addr = addr.clone();
        async move {
            // Past the listen backlog a SYN is retried after 1 s, then 3 s.
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                .await
                .ok()?
                .ok()
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    // More than the daemon could ever hold open at once.
    assert!(flood.len() > 256, "only {} flood connections", flood.len());

    let within = Duration::from_secs(5);
    let health = tokio::time::timeout(within, daemon.request(Method::GET, "/healthz").send())
        .await
        .expect("a new client was served during the flood")
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let refreshed = tokio::time::timeout(
        within,
        daemon
            .request(Method::POST, "/v1/tokens/alice/refresh")
            .send(),
    )
    .await
    .expect("a forced refresh was answered during the flood")
    .unwrap();
    let status = refreshed.status();
    let body: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["access_token"], "at-2",
        "a provider call and a database write"
    );

    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let started = Instant::now();
    let (exit, logs) = daemon.stop().await;
    assert!(exit.success(), "{logs}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        started.elapsed()
    );
    drop(flood);
}
