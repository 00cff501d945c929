//! `tokend credentials ...` and `tokend token ID`: credentials in the
//! database, through the same refresher (single-flight, lease) as the daemon.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use super::{CredentialsCommand, check_id, existing_store};
use crate::cache::Cache;
use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::model::{Grant, Status};
use crate::provider;
use crate::refresh::{Import, Refresher, Trigger};
use crate::store::key::open_store;
use crate::store::{ListFilter, Store};
use crate::telemetry::metrics::Metrics;

pub(super) async fn run(cmd: CredentialsCommand, config: &Config) -> anyhow::Result<()> {
    // An import may be the first thing an installation does; the rest need data.
    let store = match cmd {
        CredentialsCommand::Import { .. } => open_store(config, Clock::system()).await?.0,
        _ => existing_store(config).await?,
    };
    let result = match cmd {
        CredentialsCommand::List {
            status,
            provider,
            limit,
            after,
            json,
        } => {
            let status = status
                .map(|s| {
                    Status::parse(&s).with_context(|| {
                        format!("unknown status {s:?}: use active or needs_reauth")
                    })
                })
                .transpose()?;
            let filter = ListFilter {
                status,
                provider,
                after,
                limit,
            };
            let views = store.list_credentials(&filter, &["*".to_owned()]).await?;
            if json {
                for v in &views {
                    println!("{}", v.to_json());
                }
            } else {
                println!(
                    "{:<40} {:<13} {:<12} {:<21} {:>8}",
                    "ID", "STATUS", "PROVIDER", "EXPIRES", "FAILURES"
                );
                for v in &views {
                    println!(
                        "{:<40} {:<13} {:<12} {:<21} {:>8}",
                        v.id,
                        v.status.as_str(),
                        v.provider,
                        v.expires_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                        v.consecutive_failures
                    );
                }
            }
            Ok(())
        }
        CredentialsCommand::Show { id } => {
            check_id(&id)?;
            let view = store
                .get_credential(&id)
                .await?
                .with_context(|| format!("no credential {id}"))?;
            println!("{}", serde_json::to_string_pretty(&view.to_json())?);
            Ok(())
        }
        CredentialsCommand::Import {
            id,
            provider,
            refresh_token_file,
            access_token_file,
            expires_in,
            scope,
        } => {
            check_id(&id)?;
            let refresh_token = match refresh_token_file {
                Some(path) => read_secret_file(&path)?,
                None => read_secret_stdin()?,
            };
            let access_token = access_token_file
                .map(|p| read_secret_file(&p))
                .transpose()?;
            let refresher = refresher(config, &store, Some(&provider))?;
            let out = refresher
                .import(Import {
                    id: id.clone(),
                    provider,
                    refresh_token,
                    access_token,
                    expires_in,
                    scope,
                })
                .await?;
            let view = store
                .get_credential(&id)
                .await?
                .context("the import vanished")?;
            println!("{}", serde_json::to_string_pretty(&view.to_json())?);
            eprintln!(
                "{} credential {id}",
                if out.created { "created" } else { "replaced" }
            );
            Ok(())
        }
        CredentialsCommand::Delete { id, revoke } => {
            check_id(&id)?;
            // Only a revocation calls the provider (and needs its secret).
            let provider = match revoke {
                true => store.get_credential(&id).await?.map(|v| v.provider),
                false => None,
            };
            refresher(config, &store, provider.as_deref())?
                .delete(&id, revoke)
                .await?;
            eprintln!("deleted credential {id}");
            Ok(())
        }
    };
    store.close().await;
    result
}

/// A refresher for one command: no scheduler, the same single-flight and
/// lease as the daemon's, so the two never refresh one grant at once. It
/// knows only `provider` (if any), and reads only that provider's secret: a
/// root shell may not see the others' (under systemd they live in the
/// service's `$CREDENTIALS_DIRECTORY`).
fn refresher(config: &Config, store: &Store, provider: Option<&str>) -> anyhow::Result<Refresher> {
    let mut config = config.clone();
    config
        .providers
        .retain(|name, _| Some(name.as_str()) == provider);
    // No webhook is sent from the CLI: its secret is not needed either.
    config.notify.webhook_secret_file = None;
    config.read_secrets()?;
    let config = &config;
    let clock = Clock::system();
    let buckets = store.shared_buckets();
    let providers = provider::build_all(config, clock.clone(), buckets.as_ref())?;
    Ok(Refresher::new(
        store.clone(),
        Arc::new(Cache::new()),
        providers,
        clock,
        config,
        Metrics::new(),
    ))
}

/// `tokend token ID`: the access token on stdout, nothing else.
pub(super) async fn token(config: &Config, id: &str, min_ttl: u64) -> anyhow::Result<()> {
    check_id(id)?;
    let store = existing_store(config).await?;
    let grant_id = store
        .grant_id_of(id)
        .await?
        .with_context(|| format!("no credential {id}"))?;
    let min_ttl_ms = i64::try_from(min_ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
    let clock = Clock::system();
    // As the daemon hands out: expired `handout_margin_ms` early.
    let margin = config.refresh.handout_margin_ms as i64;
    let usable = |g: &Grant| {
        g.state.status == Status::Active
            && g.state
                .access
                .as_ref()
                .is_some_and(|a| a.expires_at - margin - clock.now() > min_ttl_ms)
    };
    let mut grant = store
        .get_grant(grant_id)
        .await?
        .with_context(|| format!("no credential {id}"))?;
    if grant.state.status == Status::NeedsReauth {
        bail!(
            "credential {id} needs re-authorization: {}",
            grant.state.last_error.unwrap_or_default()
        );
    }
    if !usable(&grant) {
        refresher(config, &store, Some(&grant.state.provider))?
            .refresh_grant(grant_id, Trigger::MinTtl(min_ttl_ms))
            .await?;
        grant = store
            .get_grant(grant_id)
            .await?
            .with_context(|| format!("no credential {id}"))?;
        if !usable(&grant) {
            bail!("no token of credential {id} has {min_ttl} s left");
        }
    }
    let access = grant.state.access.context("no access token")?;
    println!("{}", access.token.expose_secret());
    store.close().await;
    Ok(())
}

fn read_secret_file(path: &std::path::Path) -> anyhow::Result<SecretString> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    non_empty(text)
}

fn read_secret_stdin() -> anyhow::Result<SecretString> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the refresh token from stdin")?;
    non_empty(text)
}

fn non_empty(text: String) -> anyhow::Result<SecretString> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("the token is empty");
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
