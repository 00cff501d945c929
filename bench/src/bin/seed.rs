//! Fills a tokend database with `--count` credentials, each with its own
//! grant, refresh token and a valid access token, through the library's
//! batched `Store::put_credentials` (one transaction, one fsync, per batch).
//!
//! `--due later`: tokens that last `--lifetime-secs` (a week by default) and
//! are due for refresh at the SPEC's due time, far after any benchmark.
//! `--due now`: the same tokens, but every grant already due: the refresh
//! benchmark's storm. Ids are `cred-0000000`, `cred-0000001`, ...

use std::time::Instant;

use clap::{Parser, ValueEnum};
use secrecy::SecretString;
use tokend::clock::Clock;
use tokend::model::{AccessToken, Extras};
use tokend::refresh::schedule::due_at;
use tokend::store::crypto::{Cipher, Field};
use tokend::store::key::open_store;
use tokend::store::{NewCredential, SealedCredential, SealedGrant};
use tokend_bench::{credential_id, run};

#[derive(Parser, Debug)]
struct Args {
    /// tokend's configuration (the database and key it names are used).
    #[arg(long)]
    config: std::path::PathBuf,
    #[arg(long)]
    count: u64,
    #[arg(long, value_enum, default_value_t = Due::Later)]
    due: Due,
    #[arg(long, default_value_t = 604_800)]
    lifetime_secs: i64,
    /// Credentials per transaction.
    #[arg(long, default_value_t = 20_000)]
    batch: u64,
    /// The provider the credentials belong to (a name in the configuration).
    #[arg(long, default_value = "cronofy")]
    provider: String,
    /// Write the rows sealed here, as `copy-store` does (`Store::import_sealed`):
    /// much faster on PostgreSQL, for an empty database only.
    #[arg(long)]
    sealed: bool,
    /// Every credential's extras, a JSON object (as a code exchange or an
    /// import of a Cronofy grant stores `account_id` and `sub`).
    #[arg(long, default_value = "{}")]
    extras: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Due {
    Now,
    Later,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = tokend::config::load(Some(&args.config))?;
    run(async move {
        let clock = Clock::system();
        let (store, _) = open_store(&config, clock.clone()).await?;
        let started = Instant::now();
        let extras: Extras = serde_json::from_str(&args.extras)
            .map_err(|e| anyhow::anyhow!("--extras must be a JSON object: {e}"))?;
        let mut n = 0;
        while n < args.count {
            let end = (n + args.batch).min(args.count);
            let now = clock.now();
            let expires_at = now + args.lifetime_secs * 1000;
            let next = match args.due {
                Due::Now => now,
                Due::Later => due_at(expires_at, args.lifetime_secs, &config.refresh, 0.5),
            };
            let rows: Vec<(String, SecretString, AccessToken)> = (n..end)
                .map(|i| {
                    let access = AccessToken {
                        token: SecretString::from(format!("at-{i:029}")),
                        token_type: "bearer".into(),
                        expires_at,
                        lifetime_secs: args.lifetime_secs,
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
                .map(|(id, refresh_token, access)| NewCredential {
                    id,
                    provider: &args.provider,
                    refresh_token,
                    access: Some(access),
                    scope: Some("read_write"),
                    extras: &extras,
                    application_calendar_id: None,
                    next_refresh_at: Some(next),
                    last_refresh_at: Some(now),
                    failure: None,
                })
                .collect();
            if args.sealed {
                store
                    .import_sealed(&sealed(store.cipher(), &batch, now))
                    .await?;
            } else {
                store.put_credentials(&batch).await?;
            }
            n = end;
        }
        store.close().await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "seeded {} credentials in {secs:.1} s ({:.0}/s)",
            args.count,
            args.count as f64 / secs
        );
        Ok(())
    })
}

/// The rows `batch` becomes, each credential with a grant of its own, sealed
/// as the store would seal them.
fn sealed(cipher: &Cipher, batch: &[NewCredential<'_>], now: i64) -> Vec<SealedGrant> {
    batch
        .iter()
        .map(|c| {
            let id = rand::random::<i64>() & i64::MAX;
            let access = c.access.expect("the seeder always gives an access token");
            SealedGrant {
                id,
                provider: c.provider.to_owned(),
                status: "active".into(),
                refresh_token: cipher.seal_secret(id, Field::RefreshToken, c.refresh_token),
                refresh_token_hash: cipher.lookup_hash(c.provider, c.refresh_token),
                previous_refresh_token: None,
                access_token: Some(cipher.seal_secret(id, Field::AccessToken, &access.token)),
                token_type: access.token_type.clone(),
                scope: c.scope.map(str::to_owned),
                expires_at: Some(access.expires_at),
                lifetime_secs: Some(access.lifetime_secs),
                application_calendar_id: None,
                generation: 0,
                last_refresh_at: c.last_refresh_at,
                next_refresh_at: c.next_refresh_at,
                consecutive_failures: 0,
                last_error: None,
                created_at: now,
                updated_at: now,
                credentials: vec![SealedCredential {
                    id: c.id.to_owned(),
                    extras: serde_json::to_string(c.extras).expect("a JSON map serializes"),
                    created_at: now,
                    updated_at: now,
                }],
            }
        })
        .collect()
}
