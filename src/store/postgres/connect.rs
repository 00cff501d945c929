//! Where a PostgreSQL store lives: the configured URL with its password
//! taken out (from the URL or `storage.database_password_file`), so that
//! nothing this process prints, logs or returns as an error can carry it,
//! and the connection pools made from it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use url::Url;

use crate::store::StoreError;

/// `application_name` of every connection but the listener's.
pub const APPLICATION: &str = "tokend";

/// `application_name` of a serving member's notification connection: how
/// `rotate-key` sees which members are running.
pub const MEMBER_APPLICATION: &str = "tokend member";

/// `storage.database` selects PostgreSQL when it starts with one of these.
pub const SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// Whether `database` (the configured value) names a PostgreSQL database.
pub fn is_postgres_url(database: &str) -> bool {
    SCHEMES.iter().any(|s| database.starts_with(s))
}

/// A PostgreSQL database to connect to. Debug shows the redacted URL only.
#[derive(Clone)]
pub struct PgTarget {
    /// The URL without its password (the user name stays: it is no secret).
    url: Url,
    password: Option<SecretString>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.location())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Never quotes the value: it may hold a password.
    #[error(
        "storage.database is not a valid PostgreSQL URL ({0}); write it as \
         postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full"
    )]
    Invalid(&'static str),
}

impl PgTarget {
    /// Parses the configured URL. A password in it is taken out and kept as a
    /// secret; `password` (read from `storage.database_password_file`), when
    /// given, takes its place.
    pub fn parse(database: &str, password: Option<SecretString>) -> Result<PgTarget, TargetError> {
        if !is_postgres_url(database) {
            return Err(TargetError::Invalid(
                "the scheme must be postgres or postgresql",
            ));
        }
        let mut url =
            Url::parse(database).map_err(|_| TargetError::Invalid("it does not parse"))?;
        if !url.has_host() || url.host_str().is_some_and(str::is_empty) {
            return Err(TargetError::Invalid("it names no host"));
        }
        let in_url = url.password().map(|p| {
            let decoded = percent_decode(p);
            SecretString::from(decoded)
        });
        url.set_password(None)
            .map_err(|()| TargetError::Invalid("it cannot carry a user"))?;
        // The URL's own options are checked here, once, not at each connect.
        PgConnectOptions::from_url(&url)
            .map_err(|_| TargetError::Invalid("an option in it is not understood"))?;
        Ok(PgTarget {
            url,
            password: password.or(in_url),
        })
    }

    /// The URL for logs and messages: no password, secret-looking query
    /// parameters redacted.
    pub fn location(&self) -> String {
        crate::redact::url(&self.url)
    }

    /// The URL as configured, password included: for a test or benchmark
    /// to write into a configuration. Never for a message.
    pub fn url_with_password(&self) -> String {
        let mut url = self.url.clone();
        if let Some(p) = &self.password {
            let _ = url.set_password(Some(p.expose_secret()));
        }
        url.to_string()
    }

    /// The same server, another database (tests and benchmarks make their own).
    pub fn with_database(&self, name: &str) -> PgTarget {
        let mut other = self.clone();
        other.url.set_path(&format!("/{name}"));
        other
    }

    /// The database name the URL names (PostgreSQL's default: the user's).
    pub fn database_name(&self) -> Option<String> {
        let name = self.url.path().trim_start_matches('/');
        (!name.is_empty()).then(|| percent_decode(name))
    }

    pub(crate) fn options(&self) -> Result<PgConnectOptions, StoreError> {
        self.options_named(APPLICATION)
    }

    /// Connection options with `application_name` set to `name` (what
    /// `pg_stat_activity` shows for the connection).
    pub(crate) fn options_named(&self, name: &str) -> Result<PgConnectOptions, StoreError> {
        let mut options = PgConnectOptions::from_url(&self.url)?.application_name(name);
        if let Some(password) = &self.password {
            options = options.password(password.expose_secret());
        }
        Ok(options)
    }

    /// A pool of `connections` for statements; connecting gives up after
    /// `connect_timeout` so that an unreachable server is an error, soon.
    pub(crate) fn pool(
        &self,
        connections: u32,
        connect_timeout: Duration,
    ) -> Result<PgPool, StoreError> {
        self.pool_with(self.options()?, connections, connect_timeout, None)
    }

    /// A pool of `connections` made with `options`; `stale` (when given)
    /// checks connections that may have died before handing them out.
    pub(crate) fn pool_with(
        &self,
        options: PgConnectOptions,
        connections: u32,
        connect_timeout: Duration,
        stale: Option<&super::stale::Staleness>,
    ) -> Result<PgPool, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .min_connections(0)
            .acquire_timeout(connect_timeout)
            .test_before_acquire(false);
        let pool = match stale {
            Some(stale) => stale.checking(pool),
            None => pool,
        };
        Ok(pool.connect_lazy_with(options))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_and_every_message() {
        let t = PgTarget::parse(
            "postgres://tokend:s3cr%40t@db.internal:5432/tokend?sslmode=require",
            None,
        )
        .unwrap();
        assert_eq!(t.password.as_ref().unwrap().expose_secret(), "s3cr@t");
        let shown = format!("{} {:?}", t.location(), t);
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("db.internal:5432/tokend?sslmode=require"),
            "{shown}"
        );
        assert_eq!(t.database_name().as_deref(), Some("tokend"));
    }

    #[test]
    fn a_password_file_wins_over_the_url() {
        let t = PgTarget::parse(
            "postgresql://u:inurl@h/db",
            Some(SecretString::from("fromfile".to_owned())),
        )
        .unwrap();
        assert_eq!(t.password.unwrap().expose_secret(), "fromfile");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "postgres://",
            "postgres://u:hunter2@/db",
            "postgres://u:hunter2@h:99999/db",
        ] {
            let err = PgTarget::parse(bad, None).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("postgres://USER@HOST"), "{err}");
        }
        assert!(is_postgres_url("postgresql://h/db") && !is_postgres_url("/var/lib/tokend.db"));
    }
}
