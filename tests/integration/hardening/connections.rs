//! Connections cannot exhaust the daemon: a request head must arrive within
//! `server.header_read_timeout_secs`, an idle keep-alive connection is
//! closed after `server.idle_timeout_secs`, at most
//! `server.max_connections` are open (the longest idle one makes room for a
//! newcomer), HTTP/2 is not spoken, and SIGTERM completes whatever the
//! clients hold open.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{AppOptions, TestApp, spawn_app, spawn_app_with};

async fn app_with(server_toml: &str) -> TestApp {
    spawn_app_with(AppOptions {
        server_toml: server_toml.into(),
        ..AppOptions::default()
    })
    .await
}

/// A keep-alive `GET /healthz` on `stream`; its whole response.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{text}");
                return text;
            }
        }
    }
}

/// Whether the server closes `stream` within `limit` (end of file or reset).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => {
            // A 408 before closing is fine too.
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(text.starts_with("HTTP/1.1 408"), "unexpected data: {text}");
            matches!(
                tokio::time::timeout(limit, stream.read(&mut buf)).await,
                Ok(Ok(0) | Err(_))
            )
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_secs() {
    let app = app_with("idle_timeout_secs = 1\nheader_read_timeout_secs = 10").await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    healthz(&mut stream).await;
    healthz(&mut stream).await; // kept alive between requests
    let idle = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "never closed"
    );
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}, before the timeout"
    );

    // A connection that never sends anything is idle too.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_request_head_must_arrive_within_header_read_timeout_secs() {
    let app = app_with("idle_timeout_secs = 30\nheader_read_timeout_secs = 1").await;
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut half, Duration::from_secs(3)).await,
        "half-sent head kept open"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Trickling a byte at a time does not buy more time: the head as a whole is timed.
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = trickle.split();
    let started = Instant::now();
    let writer = async {
        for b in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if write.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let reader = async {
        let mut buf = [0u8; 256];
        tokio::time::timeout(Duration::from_secs(4), read.read(&mut buf)).await
    };
    let (_, got) = tokio::join!(writer, reader);
    assert!(got.is_ok(), "a trickled head was kept open");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // A whole request is served as always.
    let mut whole = TcpStream::connect(app.addr).await.unwrap();
    healthz(&mut whole).await;
}

#[tokio::test]
async fn shutdown_completes_whatever_clients_hold_open() {
    let app = spawn_app().await;
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    healthz(&mut idle).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(3), app.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "shutdown waited on idle and half-sent connections"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for stream in [&mut half, &mut idle, &mut silent] {
        assert!(closed_within(stream, Duration::from_secs(1)).await);
    }
}

#[tokio::test]
async fn past_max_connections_the_longest_idle_connection_makes_room() {
    let app = app_with("max_connections = 8\nidle_timeout_secs = 60").await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        healthz(&mut s).await;
        open.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A ninth client is served at once: the connection idle the longest is closed for it.
    let mut ninth = TcpStream::connect(app.addr).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), healthz(&mut ninth))
        .await
        .expect("the ninth client was served");
    assert!(
        closed_within(&mut open[0], Duration::from_secs(1)).await,
        "the oldest idle one made room"
    );
    // The others were left alone.
    let newest = open.last_mut().unwrap();
    healthz(newest).await;
}

#[tokio::test]
async fn connections_in_the_middle_of_a_request_are_not_evicted() {
    let app = app_with("max_connections = 4\nheader_read_timeout_secs = 1").await;
    let mut heads = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        heads.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The newcomer waits for a slot (the bound holds) and gets one once the
    // header timeout has closed the half-sent heads.
    let started = Instant::now();
    let got = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for s in &mut heads {
        assert!(closed_within(s, Duration::from_secs(1)).await);
    }
}

#[tokio::test]
async fn http2_is_not_spoken() {
    let app = spawn_app().await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let handshake = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io);
    let served = async {
        let (mut sender, conn) = handshake.await.ok()?;
        tokio::spawn(conn);
        let request = hyper::Request::get(format!("http://127.0.0.1:{}/healthz", app.addr.port()))
            .body(http_body_util::Empty::<axum::body::Bytes>::new())
            .unwrap();
        sender.send_request(request).await.ok()
    };
    let got = tokio::time::timeout(Duration::from_secs(3), served).await;
    assert!(
        matches!(got, Ok(None)),
        "an HTTP/2 request with prior knowledge was answered: {got:?}"
    );
}
