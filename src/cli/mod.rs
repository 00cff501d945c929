//! The command line (SPEC §6). Every command takes `--config PATH`; the ones
//! that touch credentials work on the database directly, which is safe beside
//! a running daemon (writes are transactions; refreshes take the grant's lease).

mod assets;
mod copy;
mod credentials;

use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{Config, SecretSearch};
use crate::daemon::{self, Listeners, ServeOptions};
use crate::lockfile::DatabaseLock;
use crate::model::{new_client_key, valid_credential_id};
use crate::store::Store;
use crate::store::key::{open_store, read_key};
use crate::telemetry::LogHandle;

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
        /// The client may create, change and delete credentials and run the sign-in flow
        #[arg(long)]
        manage: bool,
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
    /// Re-encrypt every stored token with the key in NEW_KEY_FILE; stop the daemon first
    ///
    /// NEW_KEY_FILE holds 32 bytes, raw or base64. Stop the daemon first (systemctl stop
    /// tokend): rotate-key refuses while a tokend process has the database open, and names
    /// its pid. A daemon still using the old key would fail every write.
    RotateKey {
        /// The new key; afterwards point storage.encryption_key_file at it
        new_key_file: PathBuf,
    },
    /// Copy every grant and credential (tokens still sealed) into an empty database: a
    /// postgres:// URL (moving to a cluster) or a SQLite file; stop tokend first
    CopyStore {
        /// The target: postgres://USER@HOST/DATABASE?sslmode=... or a SQLite file path
        #[arg(long)]
        to: String,
        /// The target PostgreSQL database's password, read from this file
        #[arg(long)]
        to_password_file: Option<PathBuf>,
    },
    /// Write the man pages and shell completions into DIR (for packaging)
    #[command(hide = true)]
    GenerateAssets { dir: PathBuf },
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
            // Secret files are not part of the configuration's validity: the
            // service may see files this shell does not. Say what is seen.
            for line in config.secret_file_report(&SecretSearch::from_env()) {
                eprintln!("{line}");
            }
            eprintln!("configuration is valid");
            Ok(())
        }
        Command::Migrate => {
            if let Some(target) = crate::store::key::postgres_target(&config)? {
                crate::store::postgres::PgStore::migrate(&target).await?;
                eprintln!("database {} is up to date", target.location());
                return Ok(());
            }
            let path = config.database_path();
            Store::migrate(&path).await?;
            eprintln!("database {} is up to date", path.display());
            Ok(())
        }
        Command::ClientKey { name, manage } => {
            client_key(&name, manage)?;
            Ok(())
        }
        Command::Credentials(cmd) => credentials::run(cmd, &config).await,
        Command::Token { id, min_ttl } => credentials::token(&config, &id, min_ttl).await,
        Command::RotateKey { new_key_file } => rotate_key(&config, &new_key_file).await,
        Command::CopyStore {
            to,
            to_password_file,
        } => copy::copy_store(&config, &to, to_password_file.as_deref()).await,
        Command::GenerateAssets { dir } => assets::generate(&dir),
    }
}

/// Opens the database of an existing installation; never creates one.
pub(super) async fn existing_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    if config.postgres_url().is_none() && !path.exists() {
        // A root shell on an installed system lacks the service's
        // $STATE_DIRECTORY, so a relative path lands in the working directory.
        let hint = match config.storage.database.is_relative()
            && std::env::var_os("STATE_DIRECTORY").is_none()
        {
            true => {
                "; a relative storage.database is under $STATE_DIRECTORY, which systemd sets for the \
                 service: run this command as the service does (`systemd-run --pipe --wait -p DynamicUser=yes \
                 -p User=tokend -p StateDirectory=tokend -p LoadCredential=tokend.key tokend ...`), or with \
                 STATE_DIRECTORY=/var/lib/tokend CREDENTIALS_DIRECTORY=/etc/credstore while the daemon is stopped"
            }
            false => "",
        };
        bail!(
            "no database at {} (storage.database); has `tokend serve` run with this configuration?{hint}",
            path.display()
        );
    }
    Ok(open_store(config, Clock::system()).await?.0)
}

fn client_key(name: &str, manage: bool) -> anyhow::Result<()> {
    if !crate::config::valid_table_name(name) {
        bail!("invalid client name {name:?}: use a-z 0-9 _ - (starting with a letter or digit)");
    }
    let key = new_client_key();
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    println!("# The client's bearer key. Shown once: tokend keeps only its hash.");
    println!("{}", key.as_str());
    println!();
    println!("# Add to the configuration (e.g. /etc/tokend/tokend.toml):");
    println!("[clients.{name}]");
    println!("key_sha256 = \"{hash}\"");
    println!("credentials = [\"*\"]");
    println!("manage = {manage}");
    Ok(())
}

pub(super) fn check_id(id: &str) -> anyhow::Result<()> {
    if !valid_credential_id(id) {
        bail!("invalid credential id {id:?}: use 1 to 128 of A-Z a-z 0-9 . _ : @ -");
    }
    Ok(())
}

async fn rotate_key(config: &Config, new_key_file: &std::path::Path) -> anyhow::Result<()> {
    let new_key = read_key(new_key_file)?;
    // Taken before the database is opened and held until the rotation is
    // committed: a daemon using the old key meanwhile would fail every write.
    let database = config.database_path();
    let _exclusive = match config.postgres_url().is_none() && database.exists() {
        true => Some(DatabaseLock::exclusive(&database)?),
        false => None,
    };
    let store = existing_store(config).await?;
    if let Some(target) = crate::store::key::postgres_target(config)? {
        // No lock file spans hosts: the members' own connections say who runs.
        let members = crate::store::postgres::PgStore::connected_members(&target).await?;
        if !members.is_empty() {
            store.close().await;
            bail!(
                "{} member(s) of the cluster are connected to {} (from {}): stop tokend on every host \
                 first (systemctl stop tokend), then run rotate-key again",
                members.len(),
                target.location(),
                members.join(", ")
            );
        }
    }
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
