//! A fast fake of a provider's API for the proxy benchmark.
//!
//! Every request with an `Authorization: Bearer ...` header gets a fixed
//! Cronofy-shaped calendar list (239 bytes); `GET /stream/{bytes}`
//! gets that many bytes of `x` instead, made chunk by chunk as the client
//! reads (64 KiB each, from one static buffer), so the fake itself holds no
//! more than a chunk whatever the size. No bearer: 401. The benchmark sends
//! the same GET here directly and through tokend's proxy.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use clap::Parser;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use tokend_bench::{run, serve_connection};

const CALENDARS: &str = concat!(
    r#"{"calendars":[{"provider_name":"google","profile_id":"pro_1","calendar_id":"cal_1","#,
    r#""calendar_name":"Team meetings","calendar_readonly":false},{"provider_name":"google","#,
    r#""profile_id":"pro_1","calendar_id":"cal_2","calendar_name":"On call"}]}"#
);

const CHUNK: usize = 64 * 1024;
static FILL: [u8; CHUNK] = [b'x'; CHUNK];

#[derive(Parser, Debug)]
struct Args {
    /// TCP address to listen on, e.g. 127.0.0.1:7792.
    #[arg(long)]
    listen: String,
}

/// A body of `remaining` bytes of `x`, one static chunk at a time.
#[derive(Debug)]
struct Filler {
    remaining: u64,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[derive(Debug)]
enum Answer {
    Fixed(&'static str),
    Stream(Filler),
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Fixed("") => Poll::Ready(None),
            Answer::Fixed(text) => {
                let frame = Frame::data(Bytes::from_static(text.as_bytes()));
                *text = "";
                Poll::Ready(Some(Ok(frame)))
            }
            Answer::Stream(filler) => Pin::new(filler).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Fixed(text) => text.is_empty(),
            Answer::Stream(filler) => filler.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Fixed(text) => SizeHint::with_exact(text.len() as u64),
            Answer::Stream(filler) => filler.size_hint(),
        }
    }
}

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Answer>, Infallible> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
    if !bearer {
        let mut response = Response::new(Answer::Fixed(r#"{"error":"invalid_token"}"#));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let (body, kind) = match request.uri().path().strip_prefix("/stream/") {
        Some(n) => {
            let remaining = n.parse().unwrap_or(0);
            (
                Answer::Stream(Filler { remaining }),
                "application/octet-stream",
            )
        }
        None => (Answer::Fixed(CALENDARS), "application/json"),
    };
    let length = body.size_hint().exact().unwrap_or(0);
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        eprintln!("fake-api listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            serve_connection(stream, service_fn(answer));
        }
    })
}
