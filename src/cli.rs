//! The command line (SPEC §6). Every command takes `--config PATH`; the ones
//! that touch credentials work on the database directly, which is safe beside
//! a running daemon (writes are transactions; refreshes take the grant's lease).

use std::path::PathBuf;

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::api::auth::new_client_key;
use crate::api::views::credential_json;
use crate::cache::Cache;
use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::daemon::{self, Listeners, ServeOptions};
use crate::provider;
use crate::refresh::{Import, Refresher, Trigger};
use crate::store::key::{open_store, read_key};
use crate::store::{ListFilter, Status, Store, valid_credential_id};
use crate::telemetry::LogHandle;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, Parser)]
#[command(
    name = "tokend",
    version,
    about = "OAuth 2.0 token-management sidecar daemon"
)]
pub struct Cli {
    /// Configuration file [default: /etc/tokend/tokend.toml if it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default command)
    Serve,
    /// Validate the configuration and print it, every secret redacted
    CheckConfig,
    /// Apply pending database migrations and exit
    Migrate,
    /// Create a client key: prints the key (once) and the config lines that admit it
    ClientKey {
        /// The client's name, its [clients.NAME] table
        #[arg(default_value = "app")]
        name: String,
    },
    /// List, show, import or delete credentials in the database
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Print a credential's access token (refreshing it first if needed), for scripts
    Token {
        id: String,
        /// The token must be valid for at least this many more seconds
        #[arg(long, default_value_t = 0)]
        min_ttl: u64,
    },
    /// Re-encrypt every stored token with the key in NEW_KEY_FILE (32 bytes, raw or base64)
    RotateKey {
        /// The new key; afterwards point storage.encryption_key_file at it
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// List credentials in id order (never a token)
    List {
        /// Only credentials with this status: active | needs_reauth
        #[arg(long)]
        status: Option<String>,
        /// Only credentials of this provider
        #[arg(long)]
        provider: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Start after this id (the last id of the previous page)
        #[arg(long)]
        after: Option<String>,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one credential as JSON (never a token)
    Show { id: String },
    /// Import an existing grant; the refresh token is read from stdin (or --refresh-token-file)
    Import {
        id: String,
        /// The provider's name ([providers.NAME])
        #[arg(long)]
        provider: String,
        /// Read the refresh token from this file instead of stdin
        #[arg(long, value_name = "PATH")]
        refresh_token_file: Option<PathBuf>,
        /// A current access token (file), with --expires-in; without one tokend refreshes at once
        #[arg(long, value_name = "PATH", requires = "expires_in")]
        access_token_file: Option<PathBuf>,
        /// Seconds the access token is still valid
        #[arg(long, requires = "access_token_file")]
        expires_in: Option<u64>,
        /// The grant's scope, if known
        #[arg(long)]
        scope: Option<String>,
    },
    /// Delete a credential (its grant goes when no credential uses it)
    Delete {
        id: String,
        /// Revoke the grant at the provider first (refused if other credentials share it)
        #[arg(long)]
        revoke: bool,
    },
}

/// Runs a parsed command line. `log` lets `serve` reload the level on SIGHUP.
pub async fn run(cli: Cli, config: Config, log: LogHandle) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listeners = Listeners::bind(&config.server)?;
            let options = ServeOptions {
                reload_from: Some(cli.config.clone()),
                log: Some(log),
                ..ServeOptions::default()
            };
            daemon::serve(config, listeners, options, daemon::termination()).await
        }
        Command::CheckConfig => {
            print!("{}", config.to_redacted_toml());
            eprintln!("configuration is valid");
            Ok(())
        }
        Command::Migrate => {
            let path = config.database_path();
            Store::migrate(&path).await?;
            eprintln!("database {} is up to date", path.display());
            Ok(())
        }
        Command::ClientKey { name } => {
            client_key(&name);
            Ok(())
        }
        Command::Credentials(cmd) => credentials(cmd, &config).await,
        Command::Token { id, min_ttl } => token(&config, &id, min_ttl).await,
        Command::RotateKey { new_key_file } => rotate_key(&config, &new_key_file).await,
    }
}

/// Opens the database of an existing installation; never creates one.
async fn existing_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    if !path.exists() {
        bail!(
            "no database at {} (storage.database); has `tokend serve` run with this configuration?",
            path.display()
        );
    }
    Ok(open_store(config, Clock::system()).await?.0)
}

fn client_key(name: &str) {
    let key = new_client_key();
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    println!("# The client's bearer key. Shown once: tokend keeps only its hash.");
    println!("{}", key.as_str());
    println!();
    println!("# Add to the configuration (e.g. /etc/tokend/tokend.toml):");
    println!("[clients.{name}]");
    println!("key_sha256 = \"{hash}\"");
    println!("credentials = [\"*\"]");
    println!("manage = false");
}

async fn credentials(cmd: CredentialsCommand, config: &Config) -> anyhow::Result<()> {
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
                    println!("{}", credential_json(v));
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
            println!("{}", serde_json::to_string_pretty(&credential_json(&view))?);
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
            let refresher = refresher(config, &store)?;
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
            println!("{}", serde_json::to_string_pretty(&credential_json(&view))?);
            eprintln!(
                "{} credential {id}",
                if out.created { "created" } else { "replaced" }
            );
            Ok(())
        }
        CredentialsCommand::Delete { id, revoke } => {
            check_id(&id)?;
            refresher(config, &store)?.delete(&id, revoke).await?;
            eprintln!("deleted credential {id}");
            Ok(())
        }
    };
    store.close().await;
    result
}

/// A refresher for one command: no scheduler, the same single-flight and
/// lease as the daemon's, so the two never refresh one grant at once.
fn refresher(config: &Config, store: &Store) -> anyhow::Result<Refresher> {
    let providers = provider::build_all(config, store.clock().clone())?;
    Ok(Refresher::new(
        store.clone(),
        Arc::new(Cache::new()),
        providers,
        config,
        Metrics::new(),
    ))
}

/// `tokend token ID`: the access token on stdout, nothing else.
async fn token(config: &Config, id: &str, min_ttl: u64) -> anyhow::Result<()> {
    check_id(id)?;
    let store = existing_store(config).await?;
    let grant_id = store
        .grant_id_of(id)
        .await?
        .with_context(|| format!("no credential {id}"))?;
    let min_ttl_ms = i64::try_from(min_ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
    let usable = |g: &crate::store::Grant| {
        g.state.status == Status::Active
            && g.state
                .access
                .as_ref()
                .is_some_and(|a| a.expires_at - store.clock().now() > min_ttl_ms)
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
        refresher(config, &store)?
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

fn check_id(id: &str) -> anyhow::Result<()> {
    if !valid_credential_id(id) {
        bail!("invalid credential id {id:?}: use 1 to 128 of A-Z a-z 0-9 . _ : @ -");
    }
    Ok(())
}

async fn rotate_key(config: &Config, new_key_file: &std::path::Path) -> anyhow::Result<()> {
    let new_key = read_key(new_key_file)?;
    let store = existing_store(config).await?;
    let old_id = store.key_id();
    let count = store.rotate_key(&new_key).await?;
    store.close().await;
    let new_id = crate::store::crypto::Cipher::new(&new_key).key_id();
    eprintln!(
        "re-encrypted {count} grants: key {old_id} -> {new_id}.\n\
         Now make {} the key tokend reads (storage.encryption_key_file, or replace the key file \
         it used) and restart it; the old key no longer opens the database.",
        new_key_file.display()
    );
    Ok(())
}
