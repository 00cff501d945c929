//! Tests of the proxy's connection pool against a real socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A raw HTTP/1.1 server: answers each request on a connection with a
/// body of `size` bytes, and closes the connection after `per_conn`
/// answers. Counts the connections it accepted.
async fn server(size: usize, per_conn: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                for _ in 0..per_conn {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                    let mut bytes = answer.into_bytes();
                    bytes.resize(bytes.len() + size, b'x');
                    if socket.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

fn pool() -> &'static Pool {
    let connector = crate::api::proxy::upstream::connector().unwrap();
    Box::leak(Box::new(Pool::new(connector)))
}

/// The API at `url`, and a GET of `x?y=1` under it.
fn get(url: &str) -> (Base, Request<Full<Bytes>>) {
    let base = Base::new(&url::Url::parse(url).unwrap()).unwrap();
    let request = Request::get(base.target("x", Some("y=1")).unwrap())
        .header(axum::http::header::HOST, base.host.clone())
        .body(Full::default())
        .unwrap();
    (base, request)
}

async fn send(pool: &'static Pool, url: &str) -> Response<Body> {
    let (base, request) = get(url);
    pool.send(&base, request).await.unwrap()
}

async fn read_all(answer: Response<Body>) -> usize {
    answer.into_body().collect().await.unwrap().to_bytes().len()
}

#[tokio::test]
async fn a_connection_is_reused_once_its_answer_was_read() {
    let (url, accepted) = server(100_000, usize::MAX).await;
    let pool = pool();
    for _ in 0..3 {
        assert_eq!(read_all(send(pool, &url).await).await, 100_000);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_api_closed_is_replaced() {
    let (url, accepted) = server(10, 1).await;
    let pool = pool();
    for _ in 0..3 {
        assert_eq!(read_all(send(pool, &url).await).await, 10);
        // The server's close reaches us before the next request.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_answer_dropped_before_its_end_closes_its_connection() {
    let (url, accepted) = server(1_000_000, usize::MAX).await;
    let pool = pool();
    let answer = send(pool, &url).await;
    let mut body = answer.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    assert_eq!(read_all(send(pool, &url).await).await, 1_000_000);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a half-read connection is never reused"
    );
}
