//! The baseline: a bare hyper 1.x server that answers every request with
//! the same 150-byte JSON body (the size of a small token response), on a
//! TCP address and/or a unix socket. Whatever tokend does beyond this is
//! its own cost.

use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokend_bench::{run, serve_connection};

/// A token-response-shaped JSON body, exactly 150 bytes.
const BODY: &str = concat!(
    r#"{"credential_id":"cred-0000042","access_token":"at-01234567","#,
    r#""token_type":"bearer","expires_at":"2026-11-08T12:34:56Z","expires_in":3599,"scope":"rw"}"#
);

#[derive(Parser, Debug)]
struct Args {
    /// TCP address to listen on, e.g. 127.0.0.1:7790.
    #[arg(long)]
    listen: Option<String>,
    /// Unix socket to listen on (replaced if it exists).
    #[arg(long)]
    unix: Option<PathBuf>,
}

async fn answer(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    assert_eq!(BODY.len(), 150, "the baseline body is 150 bytes");
    let args = Args::parse();
    run(async move {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = args.listen {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("bare-hyper listening on {}", listener.local_addr()?);
            tasks.spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await?;
                    serve_connection(stream, service_fn(answer));
                }
            });
        }
        if let Some(path) = args.unix {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path)?;
            eprintln!("bare-hyper listening on {}", path.display());
            tasks.spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await?;
                    serve_connection(stream, service_fn(answer));
                }
            });
        }
        match tasks.join_next().await {
            Some(result) => result?,
            None => anyhow::bail!("give --listen and/or --unix"),
        }
    })
}
