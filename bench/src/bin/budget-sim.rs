//! The refresh budget on a virtual clock (issue 16): tokend's own refresher,
//! cache, scheduler and budget bookkeeping over a real SQLite database, a
//! provider over loopback HTTP (a fast fake token endpoint in this process,
//! counting calls), and a manual clock moved one second at a time.
//!
//! `--grants` one-hour grants (expiries spread over the hour, as in a steady
//! state), `--hot` of them handed out once a virtual minute each, Cronofy's
//! 500 calls a minute and the default `refresh_share` (0.5): a budget of 250
//! background refreshes a minute, which keeps about 11,600 grants warm. A
//! hand-out is *from memory* when the cached token is still valid; else it
//! refreshes first, as a token request would. The first virtual hour warms
//! up (the hot set is not yet known); the second is measured. Prints
//! `key=value` lines for `bench/run.sh`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use secrecy::SecretString;
use tokend::cache::Cache;
use tokend::clock::Clock;
use tokend::model::{AccessToken, Extras};
use tokend::refresh::schedule::due_at;
use tokend::refresh::{Refresher, Trigger};
use tokend::store::NewCredential;
use tokend::store::key::open_store;
use tokend::telemetry::metrics::Metrics;
use tokend_bench::{credential_id, run, serve_connection};

#[derive(Parser, Debug)]
struct Args {
    /// tokend's configuration: the database and key it names, and the
    /// `cronofy` provider (its `api_base_url` is pointed at the fake here).
    #[arg(long)]
    config: std::path::PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    grants: u64,
    #[arg(long, default_value_t = 10_000)]
    hot: u64,
    /// Virtual minutes measured after the first hour.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
}

const LIFETIME_SECS: i64 = 3600;

/// The fake token endpoint: answers every refresh at once, counting.
async fn token(
    calls: Arc<AtomicU64>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let body: serde_json::Value =
        serde_json::from_slice(&body.unwrap_or_default()).unwrap_or_default();
    let n = calls.fetch_add(1, Ordering::Relaxed);
    let answer = serde_json::json!({
        "token_type": "bearer",
        "access_token": format!("sim-at-{n:020}"),
        "expires_in": LIFETIME_SECS,
        "refresh_token": body["refresh_token"],
    });
    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// CPU time of this process so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = tokend::config::load(Some(&args.config))?;
    run(async move {
        let calls = Arc::new(AtomicU64::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counter = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                serve_connection(stream, service_fn(move |r| token(Arc::clone(&counter), r)));
            }
        });
        let provider = config
            .providers
            .get_mut("cronofy")
            .ok_or_else(|| anyhow::anyhow!("the configuration needs [providers.cronofy]"))?;
        provider.api_base_url = Some(url.parse()?);
        let budget = provider.refresh_share * f64::from(provider.max_requests_per_minute);

        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let clock = Clock::manual(start);
        let (store, _) = open_store(&config, clock.clone()).await?;
        if store.count_grants().await? < args.grants as usize {
            let seeding = Instant::now();
            let extras = Extras::new();
            for first in (0..args.grants).step_by(20_000) {
                let rows: Vec<(String, SecretString, AccessToken)> = (first
                    ..(first + 20_000).min(args.grants))
                    .map(|i| {
                        // Expiries spread evenly over the hour.
                        let expires_at = start + (i as i64 * 3_600_000 / args.grants as i64) + 1;
                        let access = AccessToken {
                            token: SecretString::from(format!("at-{i:029}")),
                            token_type: "bearer".into(),
                            expires_at,
                            lifetime_secs: LIFETIME_SECS,
                            lifetime_issued: true,
                        };
                        (
                            credential_id(i),
                            SecretString::from(format!("rt-{i:029}")),
                            access,
                        )
                    })
                    .collect();
                let batch: Vec<NewCredential<'_>> = rows
                    .iter()
                    .map(|(id, rt, access)| NewCredential {
                        id,
                        provider: "cronofy",
                        refresh_token: rt,
                        access: Some(access),
                        scope: None,
                        extras: &extras,
                        application_calendar_id: None,
                        next_refresh_at: Some(due_at(
                            access.expires_at,
                            LIFETIME_SECS,
                            &config.refresh,
                            0.5,
                        )),
                        last_refresh_at: None,
                        failure: None,
                    })
                    .collect();
                store.put_credentials(&batch).await?;
            }
            eprintln!(
                "budget-sim: seeded {} grants in {:?}",
                args.grants,
                seeding.elapsed()
            );
        }
        let cache = Arc::new(Cache::new());
        let providers = tokend::provider::build_all(&config, clock.clone(), None)?;
        let refresher = Refresher::new(
            store,
            Arc::clone(&cache),
            providers,
            clock.clone(),
            &config,
            Metrics::new(),
        );
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        refresher.start(stopped).await?;

        // Hot credentials spread over the id range (and so over expiry times).
        let hot: Vec<String> = (0..args.hot)
            .map(|i| credential_id(i * (args.grants / args.hot)))
            .collect();
        let per_second = hot.len().div_ceil(60);
        let total_minutes = 60 + args.minutes;
        let (mut from_memory, mut refreshed_first) = (0u64, 0u64);
        let (mut max_per_minute, mut measured_calls) = (0u64, 0u64);
        let (mut cpu_measured, mut rounds_at_measure) = (Duration::ZERO, (0u64, Duration::ZERO));
        let wall = Instant::now();
        for minute in 0..total_minutes {
            let measuring = minute >= 60;
            if minute == 60 {
                cpu_measured = cpu_time();
                rounds_at_measure = refresher.budget_rounds();
            }
            let calls_before = calls.load(Ordering::Relaxed);
            for second in 0..60u64 {
                clock.advance(Duration::from_secs(1));
                let now = clock.now();
                let batch = hot
                    .iter()
                    .cycle()
                    .skip(second as usize * per_second)
                    .take(per_second);
                let mut waits = Vec::new();
                for id in batch {
                    let Some(entry) = cache.hand_out(id) else {
                        continue;
                    };
                    if entry.access.is_some_and(|a| a.expires_at > now) {
                        from_memory += u64::from(measuring);
                    } else {
                        refreshed_first += u64::from(measuring);
                        let r = refresher.clone();
                        let grant = entry.grant_id;
                        waits.push(tokio::spawn(async move {
                            r.refresh_grant(grant, Trigger::MinTtl(0)).await
                        }));
                    }
                }
                // Let the scheduler and the bookkeeping act on this second:
                // until the round for it ran and no refresh is in flight, or
                // those in flight wait for the provider's next cell (the
                // clock must move for them).
                drop(waits);
                let mark = now / 5000 * 5000;
                let (mut same, mut last) = (0, usize::MAX);
                loop {
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    let flying = refresher.in_flight();
                    same = if flying == last { same + 1 } else { 0 };
                    last = flying;
                    if refresher.budget_round_at() >= mark && (flying == 0 || same >= 25) {
                        break;
                    }
                }
            }
            let in_minute = calls.load(Ordering::Relaxed) - calls_before;
            if minute % 10 == 9 {
                eprintln!(
                    "budget-sim: minute {}: {in_minute} calls, {from_memory} from memory, {refreshed_first} refreshed first (measured), {:?} wall",
                    minute + 1,
                    wall.elapsed()
                );
            }
            if measuring {
                max_per_minute = max_per_minute.max(in_minute);
                measured_calls += in_minute;
            }
        }
        let (rounds, round_time) = refresher.budget_rounds();
        let (rounds, round_time) = (
            rounds - rounds_at_measure.0,
            round_time - rounds_at_measure.1,
        );
        let cpu = cpu_time() - cpu_measured;
        let handed_out = from_memory + refreshed_first;
        let report = refresher.budget_report();
        let standing = report
            .iter()
            .find(|r| &*r.provider == "cronofy")
            .map(|r| r.standing)
            .unwrap_or_default();
        println!("budget_grants={}", args.grants);
        println!("budget_hot={}", args.hot);
        println!("budget_per_minute={budget:.0}");
        println!("budget_need_per_minute={:.0}", standing.need_per_minute);
        println!("budget_warm={}", standing.warm);
        println!("budget_lapsed={}", standing.lapsed);
        println!("budget_hot_handouts={handed_out}");
        println!(
            "budget_hot_from_memory_pct={:.3}",
            from_memory as f64 * 100.0 / handed_out.max(1) as f64
        );
        println!(
            "budget_calls_per_minute_mean={:.1}",
            measured_calls as f64 / args.minutes.max(1) as f64
        );
        println!("budget_calls_per_minute_max={max_per_minute}");
        let per_round = round_time.as_secs_f64() * 1000.0 / rounds.max(1) as f64;
        println!("budget_round_ms={per_round:.2}");
        println!("budget_round_cpu_pct={:.3}", per_round / 5000.0 * 100.0);
        println!("budget_sim_cpu_s={:.1}", cpu.as_secs_f64());
        println!("budget_sim_wall_s={:.1}", wall.elapsed().as_secs_f64());
        Ok(())
    })
}
