//! Propagation across cluster members: creates `--count` credentials, each
//! through one member in turn (an import with its access token, so no
//! provider call), and measures for every other member how long after the
//! import's answer it serves the credential's token. Prints
//! `propagation: N samples p50 X ms p99 Y ms max Z ms`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokend_bench::run;

#[derive(Parser, Debug)]
struct Args {
    /// The members' addresses, host:port, comma-separated.
    #[arg(long, value_delimiter = ',')]
    members: Vec<String>,
    /// A client key with manage rights.
    #[arg(long)]
    key: String,
    #[arg(long, default_value_t = 300)]
    count: usize,
    #[arg(long, default_value = "cronofy")]
    provider: String,
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    key: &str,
    body: Option<String>,
) -> anyhow::Result<u16> {
    send.ready().await?;
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = send.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.members.len() < 2 {
        bail!("--members needs at least two addresses");
    }
    run(async move {
        let mut conns = Vec::new();
        for m in &args.members {
            conns.push(connect(m).await?);
        }
        let run_id = rand::random::<u32>();
        let mut samples = Vec::with_capacity(args.count * (conns.len() - 1));
        for i in 0..args.count {
            let writer = i % conns.len();
            let id = format!("prop-{run_id:08x}-{i}");
            let body = serde_json::json!({
                "provider": args.provider,
                "refresh_token": format!("rt-{id}"),
                "access_token": format!("at-{id}"),
                "expires_in": 3600,
            })
            .to_string();
            let path = format!("/v1/credentials/{id}");
            let status = call(&mut conns[writer], "PUT", &path, &args.key, Some(body)).await?;
            if status != 201 {
                bail!("import through member {writer} answered {status}");
            }
            let committed = Instant::now();
            let token = format!("/v1/tokens/{id}");
            for (m, conn) in conns.iter_mut().enumerate() {
                if m == writer {
                    continue;
                }
                loop {
                    if call(conn, "GET", &token, &args.key, None).await? == 200 {
                        samples.push(committed.elapsed());
                        break;
                    }
                    if committed.elapsed() > Duration::from_secs(10) {
                        bail!("member {m} did not serve {id} within 10 s");
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "propagation: {} samples p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            samples.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0))
        );
        Ok(())
    })
}
