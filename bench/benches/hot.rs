//! `cargo bench -p tokend-bench`: the pure pieces on tokend's hot paths.
//!
//! - `due_at`: the due-time formula, once per refresh and per grant at start.
//! - `cache_get`: one lookup among 100,000 cached credentials (every hand-out).
//! - `cache_publish`: rendering and publishing one grant (every refresh, and
//!   every grant at start).
//! - `aead_open`: opening one sealed access token (every grant at start).

use divan::{Bencher, black_box};
use secrecy::SecretString;
use tokend::cache::Cache;
use tokend::config::RefreshConfig;
use tokend::model::{AccessToken, CredentialExtras, GrantId, GrantState, Status};
use tokend::refresh::schedule::due_at;
use tokend::store::crypto::{Cipher, Field, MasterKey};

const CREDENTIALS: u64 = 100_000;

fn main() {
    divan::main();
}

fn refresh_config() -> RefreshConfig {
    RefreshConfig {
        lead_fraction: 0.2,
        min_lead_secs: 300,
        jitter_fraction: 0.05,
        max_lifetime_secs: 86_400,
        max_concurrency: 16,
        retry_initial_secs: 1.0,
        retry_max_secs: 300.0,
        force_refresh_min_interval_secs: 10,
        handout_margin_ms: 1000,
        handout_wait_ms: 2000,
    }
}

fn grant(n: u64) -> GrantState {
    GrantState {
        id: GrantId(n as i64),
        provider: "cronofy".into(),
        status: Status::Active,
        access: Some(AccessToken {
            token: SecretString::from(format!("at-{n:029}")),
            token_type: "bearer".into(),
            expires_at: 1_800_000_000_000,
            lifetime_secs: 3600,
            lifetime_issued: true,
        }),
        scope: Some("read_write".into()),
        application_calendar_id: None,
        generation: 1,
        last_refresh_at: None,
        next_refresh_at: Some(1_799_999_000_000),
        consecutive_failures: 0,
        last_error: None,
        credentials: vec![CredentialExtras {
            id: tokend_bench::credential_id(n),
            extras: serde_json::Map::new(),
        }],
    }
}

#[divan::bench]
fn due_at_formula(bencher: Bencher) {
    let cfg = refresh_config();
    bencher.bench(|| {
        due_at(
            black_box(1_800_000_000_000),
            black_box(3600),
            &cfg,
            black_box(0.37),
        )
    });
}

#[divan::bench]
fn cache_get(bencher: Bencher) {
    let cache = Cache::new();
    for n in 0..CREDENTIALS {
        cache.publish(&grant(n));
    }
    let ids: Vec<String> = (0..1024u64)
        .map(|i| tokend_bench::credential_id(i * 97 % CREDENTIALS))
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) & 1023;
        cache.get(black_box(&ids[i]))
    });
}

#[divan::bench]
fn cache_publish(bencher: Bencher) {
    let cache = Cache::new();
    let g = grant(42);
    bencher.bench(|| cache.publish(black_box(&g)));
}

#[divan::bench]
fn aead_open(bencher: Bencher) {
    let cipher = Cipher::new(&MasterKey::generate());
    let sealed = cipher.seal(42, Field::AccessToken, format!("at-{:029}", 42).as_bytes());
    bencher.bench(|| {
        cipher
            .open_secret(black_box(42), Field::AccessToken, black_box(&sealed))
            .unwrap()
    });
}
