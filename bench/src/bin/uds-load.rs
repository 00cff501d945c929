//! Load over a unix socket, which wrk cannot speak: `--connections`
//! keep-alive HTTP/1.1 connections, each sending `GET {prefix}{id}{suffix}` for a
//! random id among `--ids` seeded credentials, with the bearer key, one
//! request at a time, for `--duration-secs`. Prints requests/s and the
//! latency percentiles in the same `key: value` lines as `bench/wrk-report.lua`.
//!
//! With `--requests N` each connection sends exactly N requests instead (the
//! callgrind measurement counts the server's instructions for N requests);
//! `--tcp ADDR` connects over TCP instead of `--socket`.
//!
//! Runs on one thread (a current-thread runtime), like `wrk -t1`, so
//! `taskset` can keep it on its own core.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use tokend_bench::credential_id;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, required_unless_present = "tcp")]
    socket: Option<PathBuf>,
    /// Connect over TCP to this address (`127.0.0.1:PORT`) instead.
    #[arg(long, conflicts_with = "socket")]
    tcp: Option<String>,
    /// Exactly this many requests per connection (then `--duration-secs`
    /// does not apply).
    #[arg(long)]
    requests: Option<u64>,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Ids are drawn from `cred-0000000` up to this many.
    #[arg(long, default_value_t = 100_000)]
    ids: u64,
    #[arg(long, default_value = "/v1/tokens/")]
    prefix: String,
    /// Appended after the id (the proxy's API path, e.g. `/v1/calendars`).
    #[arg(long, default_value = "")]
    suffix: String,
    /// The bearer key (`Authorization: Bearer KEY`).
    #[arg(long, default_value = "")]
    key: String,
}

/// Latencies in microseconds and the count of non-200 answers.
async fn connection(args: &Args, until: Instant) -> anyhow::Result<(Vec<u32>, u64)> {
    let mut sender = match (&args.tcp, &args.socket) {
        (Some(addr), _) => {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::task::spawn_local(conn);
            sender
        }
        (None, Some(path)) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::task::spawn_local(conn);
            sender
        }
        (None, None) => anyhow::bail!("give --socket or --tcp"),
    };
    let auth = format!("Bearer {}", args.key);
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut sent_count = 0u64;
    while match args.requests {
        Some(n) => sent_count < n,
        None => Instant::now() < until,
    } {
        sent_count += 1;
        let path = format!(
            "{}{}{}",
            args.prefix,
            credential_id(rng.gen_range(0..args.ids)),
            args.suffix
        );
        let request = Request::get(path)
            .header(HOST, "localhost")
            .header(AUTHORIZATION, auth.as_str())
            .body(Empty::<Bytes>::new())?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if status != 200 {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let args: &'static Args = Box::leak(Box::new(Args::parse()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let (mut all, errors, elapsed) = local.block_on(&runtime, async move {
        let started = Instant::now();
        let until = started + Duration::from_secs(args.duration_secs);
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::task::spawn_local(connection(args, until)))
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (latencies, e) = task.await??;
            all.extend(latencies);
            errors += e;
        }
        anyhow::Ok((all, errors, started.elapsed()))
    })?;
    all.sort_unstable();
    println!("requests: {}", all.len());
    println!("non_2xx: {errors}");
    println!("rps: {:.0}", all.len() as f64 / elapsed.as_secs_f64());
    println!("p50_us: {}", percentile(&all, 50.0));
    println!("p99_us: {}", percentile(&all, 99.0));
    Ok(())
}
