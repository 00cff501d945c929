//! Shared pieces of the benchmark tools in `src/bin/`:
//!
//! - `bare-hyper`: the baseline, a hyper 1.x server answering every request
//!   with one fixed 150-byte JSON body, over TCP or a unix socket.
//! - `fake-token`: a fast fake of Cronofy's `POST /oauth/token` that answers
//!   refresh-token grants at once and counts them (`GET /count`).
//! - `seed`: fills a tokend database with N credentials through
//!   `Store::put_credentials` (batched: one fsync per batch).
//! - `fake-api`: a fast fake of a provider's API for the proxy benchmark: a
//!   fixed calendar list, or `/stream/{bytes}` made as the client reads.
//! - `uds-load`: a keep-alive HTTP/1.1 load generator for unix sockets (wrk
//!   speaks TCP only), printing what `bench/wrk-report.lua` prints for wrk.
//!
//! `bench/run.sh` builds and drives them and prints the table.

use std::convert::Infallible;
use std::future::Future;

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The credential id of seed number `n`: what the load generators ask for.
pub fn credential_id(n: u64) -> String {
    format!("cred-{n:07}")
}

/// Serves HTTP/1.1 with keep-alive on one accepted connection, in its own task.
pub fn serve_connection<IO, S, B>(io: IO, service: S)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    });
}

/// Runs `f` on a multi-threaded tokio runtime sized like tokend's (one
/// worker per core the process may run on), so baselines compare like with like.
pub fn run<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
