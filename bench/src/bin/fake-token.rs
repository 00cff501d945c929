//! A fast fake of Cronofy's token endpoint for the refresh benchmark.
//!
//! `POST /oauth/token` with a JSON body answers a `refresh_token` grant at
//! once: a new access token, the same refresh token (Cronofy does not
//! rotate), `expires_in` as configured. `GET /count` says how many grants it
//! answered. It checks nothing else: it exists to be faster than tokend, and
//! `bench/run.sh` measures its own maximum rate alone to show that it is.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokend_bench::{run, serve_connection};

#[derive(Parser, Debug)]
struct Args {
    /// TCP address to listen on, e.g. 127.0.0.1:7791.
    #[arg(long)]
    listen: String,
    /// `expires_in` of the access tokens it issues, in seconds.
    #[arg(long, default_value_t = 604_800)]
    expires_in: u64,
    /// Answer as Cronofy does, with `account_id` and `sub` beside the tokens
    /// (fields tokend keeps as the credentials' extras).
    #[arg(long)]
    cronofy_extras: bool,
}

#[derive(Debug)]
struct Fake {
    answered: AtomicU64,
    expires_in: u64,
    cronofy_extras: bool,
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn handle(
    fake: Arc<Fake>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/count") => {
            let n = fake.answered.load(Ordering::Relaxed);
            Ok(reply(StatusCode::OK, n.to_string()))
        }
        (&Method::POST, "/oauth/token") => {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let request: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let Some(refresh_token) = request["refresh_token"].as_str() else {
                let error = json!({"error": "invalid_request"}).to_string();
                return Ok(reply(StatusCode::BAD_REQUEST, error));
            };
            let n = fake.answered.fetch_add(1, Ordering::Relaxed) + 1;
            let mut body = json!({
                "token_type": "bearer",
                "access_token": format!("fake-at-{n:024}"),
                "expires_in": fake.expires_in,
                "refresh_token": refresh_token,
                "scope": "read_write",
            });
            if fake.cronofy_extras {
                body["account_id"] = json!("acc_5700a00eb0ccd07000000000");
                body["sub"] = json!("acc_5700a00eb0ccd07000000000");
            }
            Ok(reply(StatusCode::OK, body.to_string()))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, "{}".into())),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fake = Arc::new(Fake {
        answered: AtomicU64::new(0),
        expires_in: args.expires_in,
        cronofy_extras: args.cronofy_extras,
    });
    run(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        eprintln!("fake-token listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let fake = Arc::clone(&fake);
            serve_connection(stream, service_fn(move |r| handle(Arc::clone(&fake), r)));
        }
    })
}
